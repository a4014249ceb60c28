"""The exception that means "the user asked for something wrong": the CLI prints it as one line, no traceback.

Each module defines its own user errors as subclasses of :class:`UserError` (often also of ``ValueError`` or
``KeyError`` for library callers), so this module imports nothing of the package. A path of the wrong kind (a file
where a folder goes, or the other way round) is checked where a command takes it (:func:`expect_folder`,
:func:`expect_file`).
"""
from pathlib import Path


class UserError(Exception):
    """Bad input from the user (a path, an option, a file). The message says what and, where possible, the fix."""

    def __str__(self) -> str:  # plain message also for KeyError subclasses (KeyError would quote it)
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class WrongKindOfPath(UserError):
    """A file where a folder must be, or a folder where a file must be."""


def expect_folder(path: str | Path, what: str) -> Path:
    """``path`` if it is a folder or does not exist yet; :class:`WrongKindOfPath` if it is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise WrongKindOfPath(f"{what} {path} is a file, not a folder; give a new or existing folder")
    return path


def expect_file(path: str | Path, what: str) -> Path:
    """``path`` if it is a file or does not exist yet; :class:`WrongKindOfPath` if it is a folder."""
    path = Path(path)
    if path.is_dir():
        raise WrongKindOfPath(f"{what} {path} is a folder, not a file; give a file name")
    return path
