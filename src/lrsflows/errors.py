"""Errors a user can meet: each message is one sentence that says what happened and what to do."""


class RunError(Exception):
    """A run cannot go on (bad checkpoint, diverged loss, unwritable output); the CLI prints it and exits 1."""
