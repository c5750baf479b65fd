"""One error type for mistakes a user can fix: the CLI prints its message, not a traceback."""


class JtlError(Exception):
    """A problem with the user's config or data; the message says what is wrong and what to do."""
