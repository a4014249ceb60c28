"""The exception that means "the user asked for something wrong": the CLI prints it as one line, no traceback.

Each module defines its own user errors as subclasses of :class:`UserError` (often also of ``ValueError`` or
``KeyError`` for library callers), so this module imports nothing of the package.
"""


class UserError(Exception):
    """Bad input from the user (a path, an option, a file). The message says what and, where possible, the fix."""

    def __str__(self) -> str:  # plain message also for KeyError subclasses (KeyError would quote it)
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()
