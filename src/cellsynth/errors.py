"""The one exception type for user errors."""


class CellsynthError(ValueError):
    """A problem with the user's input, files or options.

    The message says what is wrong and how to fix it. The command line prints it as one
    line and exits with status 2, without a traceback.
    """
