"""The one exception type for a user's mistake.

Every error geneval raises for bad input is a ``GenevalInputError`` (a ``ValueError``) whose message is a
single line naming the file or value and saying what was expected. The CLI prints exactly that line.
"""


class GenevalInputError(ValueError):
    """Bad input from the user: a file, an array, an option or a name that geneval cannot use."""

    def __init__(self, message: str):
        # One line, always: a traceback-free CLI error must fit on the terminal's last line.
        super().__init__(" ".join(str(message).split()))
