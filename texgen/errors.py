"""The one exception type users see: the CLI prints its message as a single line and exits 1."""


class TexgenError(Exception):
    """A problem with the user's input (file, size, model) that has a one-line explanation."""
