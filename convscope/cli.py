"""The ``convscope`` command: a thin dispatcher over the modules in :mod:`convscope.commands`.

Each command module defines ``HELP`` (one line), ``ORDER`` (position in ``--help``), ``add_arguments(parser)``
and ``run(args) -> int``. User mistakes raise :class:`convscope.util.errors.UserError` (or a subclass defined where
the mistake is found) and are printed as one line (exit code 2), never as a traceback.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import pkgutil
import sys

from . import __version__, commands


def _command_modules(only: str | None = None):
    """The command modules (all of them, for ``--help``; just ``only`` when a command is named, so that a command
    starts without importing the others: ``convscope train`` reaches its run-folder lock before torch loads)."""
    names = [m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    if only in names:
        names = [only]
    mods = [importlib.import_module(f"convscope.commands.{name}") for name in names]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 99), m.__name__))


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``convscope CMD: error: ...; see --help``), like every other user error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# operating-system conditions that are the user's to fix (a full disk, a read-only or forbidden folder)
_OS_USER_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                   errno.EIO: "input/output error (a failing disk or mount?)", errno.EFBIG: "file too large"}
# a path of the wrong kind (a file where a folder must be, or the other way round): a user error like any other
_WRONG_KIND = {errno.EEXIST: "a file is in the way of a folder", errno.ENOTDIR: "a file is in the way of a folder",
               errno.EISDIR: "a folder is in the way of a file"}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their line breaks (examples stay on lines of their own), and an option's default is shown
    as ``(default: X)`` only where it says something: not None, empty or off, and not already told in words."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        if ("default" in text or default is None or default is False or default == "" or default == []
                or default is argparse.SUPPRESS or not (action.option_strings or action.nargs in ("?", "*"))):
            return text
        return f"{text} (default: %(default)s)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``command`` alone (with the same options) where that names one."""
    parser = _Parser(
        prog="convscope",
        description="Train AlexNet/ZFNet as their papers describe, and look inside trained convnets "
                    "(deconvnet, top-9 atlas, occlusion, invariance, correspondence, transfer, retrieval).",
        epilog="Run 'convscope COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"convscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules(command):
        name = mod.__name__.rsplit(".", 1)[-1]
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=_HelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _paths=getattr(mod, "PATHS", None))
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    from .commands._checks import PATHS, check_paths
    from .util.errors import UserError

    try:
        check_paths(args, PATHS if args._paths is None else args._paths)  # before the command imports torch
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"convscope {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno in _WRONG_KIND and err.filename:  # a rename names the target second
            print(f"convscope {args.command}: error: {_WRONG_KIND[err.errno]}: {err.filename2 or err.filename}",
                  file=sys.stderr)
            return 2
        if err.errno not in _OS_USER_ERRORS:
            raise
        where = f" ({err.filename})" if err.filename else ""
        print(f"convscope {args.command}: error: {_OS_USER_ERRORS[err.errno]}{where}; files written before are "
              f"intact (checkpoints are replaced atomically)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"convscope {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
