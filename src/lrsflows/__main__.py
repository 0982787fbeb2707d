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


def stopped_while_starting(number: int) -> Stopped:
    return Stopped(number, f"stopped by {signal_name(number)} while starting; nothing was run — rerun the command.")


def run() -> None:
    """The entry point: a SIGTERM or SIGINT at any moment, even while torch and Hydra are imported, is one
    sentence and exit 128 + its number; cli.main then installs handlers that know the task.
    `--version` prints ours (version_line) before Hydra, which would print its own, sees the arguments."""
    if "--version" in sys.argv[1:]:
        print(version_line())
        return

    received = []

    def stop(number, frame):
        received.append(number)
        raise stopped_while_starting(number)

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, stop)
    # On a machine already busy when the run starts, OpenMP threads that wait for work sleep instead of spinning
    # (read when torch loads its OpenMP runtime). POWER RQ-NSF (C) training step, 2 threads on 2 cores: alone,
    # spinning 76-80 ms and passive 116-130 ms; beside two busy processes, spinning 0.36-6.8 s and passive
    # 0.14-0.29 s. The environment wins where it sets a policy.
    if "OMP_WAIT_POLICY" not in os.environ and os.getloadavg()[0] >= len(os.sched_getaffinity(0)):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from .cli import main

        main()
    except Stopped as error:
        fail(str(error), error.exit_code)
    except Exception:
        # Raised from a signal handler in the middle of a library's import, Stopped can leave that library's
        # state half-built and surface as another exception; the signal is still what ended the run.
        if not received:
            raise
        stop = stopped_while_starting(received[0])
        fail(str(stop), stop.exit_code)


if __name__ == "__main__":
    run()
