"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class CompileError(Exception):
    """Bad input or a failed stage; the message is one line that names the file and what is wrong."""
