"""The ``convscope`` command: a thin dispatcher over the modules in :mod:`convscope.commands`.

Each command module defines ``HELP`` (one line), ``ORDER`` (position in ``--help``), ``add_arguments(parser)``
and ``run(args) -> int``. User mistakes raise :class:`convscope.errors.UserError` (or a subclass defined where
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


def _command_modules():
    mods = [importlib.import_module(f"convscope.commands.{m.name}") for m in pkgutil.iter_modules(commands.__path__)
            if not m.name.startswith("_")]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 99), m.__name__))


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``convscope CMD: error: ...; see --help``), like every other user error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# operating-system conditions that are the user's to fix (a full disk, a read-only or forbidden folder)
_OS_USER_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "read-only file system", errno.EACCES: "permission denied"}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="convscope",
        description="Train AlexNet/ZFNet as their papers describe, and look inside trained convnets "
                    "(deconvnet, top-9 atlas, occlusion, invariance, correspondence, transfer, retrieval).",
        epilog="Run 'convscope COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"convscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        name = mod.__name__.rsplit(".", 1)[-1]
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    from .errors import UserError

    try:
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"convscope {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
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
