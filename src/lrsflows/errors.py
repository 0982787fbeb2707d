"""Errors a user can meet: each message is one sentence that says what happened and what to do."""

import sys
from typing import NoReturn


class RunError(Exception):
    """A run cannot go on (bad checkpoint, diverged loss, unwritable output); the CLI prints it and exits 1."""


def fail(message: str) -> NoReturn:
    """End the program as every user-facing error does: `error: <one sentence>` on stderr, exit status 1."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)
