"""A stop asked of a job through a file rather than a signal: a sweep's launcher writes it once and every job of
the sweep, in whatever process it runs, stops as if it had been sent that signal (the training loop after its
step, with last.pt written)."""

import os
import signal
from pathlib import Path

from .errors import signal_name

# The file a job polls: set by the CLI for the jobs of a multirun, inherited by their data-parallel processes.
VARIABLE = "LRSFLOWS_STOP_FILE"


def request(path: Path, number: int) -> None:
    path.write_text(f"{signal_name(number)}\n")


def polled_file() -> Path | None:
    """The file this process's job polls (VARIABLE), or None outside a sweep."""
    return Path(os.environ[VARIABLE]) if os.environ.get(VARIABLE) else None


def requested(path: Path) -> int | None:
    """The signal number a stop was requested with in the file at `path`, or None."""
    if not path.exists():
        return None
    return signal.Signals[path.read_text().strip()].value
