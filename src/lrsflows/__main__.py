"""`python -m lrsflows` and the `lrsflows` command: signals are handled before anything heavy is imported."""

import os
import platform
import signal
import sys
from importlib.metadata import PackageNotFoundError, version

from . import __version__
from .errors import Stopped, fail, signal_name


def version_line() -> str:
    """What `lrsflows --version` prints: ours, torch's and Python's versions (torch's from its metadata, unimported)."""
    try:
        torch = version("torch")
    except PackageNotFoundError:
        torch = "not installed"
    return f"lrsflows {__version__} (torch {torch}, Python {platform.python_version()})"


def run() -> None:
    """The entry point: a SIGTERM or SIGINT at any moment, even while torch and Hydra are imported, is one
    sentence and exit 128 + its number; cli.main then installs handlers that know the task.
    `--version` prints ours (version_line) before Hydra, which would print its own, sees the arguments."""
    if "--version" in sys.argv[1:]:
        print(version_line())
        return

    def stop(number, frame):
        raise Stopped(number, f"stopped by {signal_name(number)} while starting; nothing was run — rerun the command.")

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, stop)
    # OpenMP threads that wait for work sleep instead of spinning (read when torch loads its OpenMP runtime): beside
    # another busy process on 2 cores, a 2-thread POWER RQ-NSF (C) step took 0.78-0.98 s spinning, 0.21 s passive
    # (1 thread: 0.20 s). The environment wins where it sets its own.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        from .cli import main

        main()
    except Stopped as error:
        fail(str(error), error.exit_code)


if __name__ == "__main__":
    run()
