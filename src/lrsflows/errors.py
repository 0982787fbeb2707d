"""Errors a user can meet: each message is one sentence that says what happened and what to do."""

import signal
import sys
from typing import NoReturn


class RunError(Exception):
    """A run cannot go on (bad checkpoint, diverged loss, unwritable output); the CLI prints it and exits 1."""


class Stopped(BaseException):
    """SIGTERM or SIGINT ended the program; it exits 128 + the signal's number (143, 130), as a shell reports it.

    A BaseException, like KeyboardInterrupt: no `except Exception` on the way (Hydra's, a failure record's)
    mistakes a stop for an error."""

    def __init__(self, number: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + number


def signal_name(number: int) -> str:
    return signal.Signals(number).name


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """End the program as every user-facing error does: `error: <one sentence>` on stderr, a non-zero exit."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(exit_code)
