"""The exceptions that mean "the user asked for something wrong": the CLI prints them as one line, no traceback."""


class UserError(Exception):
    """Bad input from the user (a path, an option, a file). The message says what and, where possible, the fix."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Every exception class the CLI reports as a one-line error."""
    from .analysis import UnknownLayerError
    from .checkpoint import CheckpointError
    from .data.images import ImageReadError
    from .models import UnknownModelError

    return (UserError, CheckpointError, ImageReadError, UnknownLayerError, UnknownModelError)
