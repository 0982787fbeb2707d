"""Errors a user can meet: each message is one sentence that says what happened and what to do."""

import shutil
import signal
import sys
from pathlib import Path
from typing import NoReturn


class RunError(Exception):
    """A run cannot go on (bad checkpoint, diverged loss, unwritable output); the CLI prints it and exits 1."""


# The exact command that continues the run or sweep this process serves, once the CLI has set it (continue_with);
# a library caller gets the general advice.
_resume_command: str | None = None


def invocation() -> list[str]:
    """How to start this Python on lrsflows again from the same folder: `python -m lrsflows` where `python` on the
    PATH is this interpreter, else this interpreter by its path (e.g. `.venv/bin/python` after `make demo`)."""
    interpreter = Path(sys.executable)
    on_path = shutil.which("python")
    if on_path is not None and Path(on_path).resolve() == interpreter.resolve():
        return ["python", "-m", "lrsflows"]
    inside = interpreter.absolute().is_relative_to(Path.cwd())
    return [str(interpreter.absolute().relative_to(Path.cwd()) if inside else interpreter), "-m", "lrsflows"]


def continue_with(command: str) -> None:
    global _resume_command
    _resume_command = command


def resume_advice() -> str:
    """What ends the advice when a training run was cut short: it goes on from its checkpoints."""
    if _resume_command is None:
        return "rerun the same command with trainer.resume=true to finish the run"
    return f"finish it with `{_resume_command}`"


class WriteError(RunError):
    """A run's file could not be written (a full disk, a read-only or unwritable folder). What to do next depends
    on the task: a training run resumes from its checkpoints (the same command without trainer.resume=true would
    refuse its run dir), eval and sample start again; str() is the latter, `advice(training=True)` the former."""

    def __init__(self, path, error: OSError):
        self.problem = f"could not write {path} ({error.strerror or error}); free space or make the folder writable"
        super().__init__(self.advice(training=False))

    def advice(self, training: bool) -> str:
        return f"{self.problem}, then {resume_advice() if training else 'rerun the command'}."


class Stopped(BaseException):
    """SIGTERM or SIGINT ended the program; it exits 128 + the signal's number (143, 130), as a shell reports it.

    A BaseException, like KeyboardInterrupt: no `except Exception` on the way (Hydra's, a failure record's)
    mistakes a stop for an error."""

    def __init__(self, number: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + number


def signal_name(number: int) -> str:
    return signal.Signals(number).name


def stopped(number: int, task: str) -> Stopped:
    """The stop by signal `number` of a `task` that had not finished, with what to do about it."""
    advice = f"{resume_advice()}." if task == "train" else "its results were not written; rerun the command."
    return Stopped(number, f"stopped by {signal_name(number)} before the {task} task finished; {advice}")


def stop_on_signals(task: str) -> None:
    """Outside the training loop (start-up, final evaluation, sampling) SIGTERM and SIGINT end the program at
    once, as one sentence and exit 128 + the signal; the training loop installs its own, gentler handler."""

    def stop(number, frame):
        raise stopped(number, task)

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, stop)


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """End the program as every user-facing error does: `error: <one sentence>` on stderr, a non-zero exit."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(exit_code)
