"""The one exception type a user meets when data is missing or damaged."""


class DataError(Exception):
    """Missing, corrupt or unexpected data; its message is one sentence naming the path and the fix.

    The CLI prints ``str(error)`` and exits non-zero, so the message must stand on its own.
    """
