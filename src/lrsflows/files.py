"""Files that appear whole or not at all, and run dirs one process at a time.

A crash or SIGKILL mid-write never leaves a torn checkpoint or result; two processes writing the same file
each use their own temporary file; two processes never train in one run dir at once.
"""

import fcntl
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import RunError, WriteError, resume_advice


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through `write` into a temporary file of this process's own beside `path`, fsync, then rename it
    over `path`; a failure (full disk, read-only folder) is a WriteError naming `path`."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:  # a read-only folder, where it was never created
            pass
        cause = _os_error(error)
        if cause is None:
            raise
        raise WriteError(path, cause) from error


def _os_error(error: BaseException | None) -> OSError | None:
    """The OSError behind `error`: itself, or one it was raised while handling (torch.save's zip writer, closing
    after a full disk's OSError, raises a RuntimeError about its file position instead)."""
    while error is not None and not isinstance(error, OSError):
        error = error.__context__
    return error


def write_json(path: Path, record: dict) -> None:
    write_atomically(path, lambda handle: handle.write((json.dumps(record, indent=2) + "\n").encode()))


@contextmanager
def locked(folder: Path, held: bool = True) -> Iterator[None]:
    """Hold an exclusive advisory lock on `folder` for the block (flock on the folder itself: nothing is written,
    and the lock goes when the process does, even on SIGKILL). `held=False` skips it (a worker process whose
    launcher holds it)."""
    if not held:
        yield
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError as error:
        raise RunError(
            f"cannot open the run folder {folder} ({error.strerror or error}); fix its permissions or choose another paths.output_dir."
        ) from error
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(
                f"another process is already running in {folder} (the same command started twice); "
                f"wait for it to finish, or stop it and {resume_advice()}."
            ) from None
        yield
    finally:
        os.close(descriptor)
