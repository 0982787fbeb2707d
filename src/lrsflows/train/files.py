"""Files that appear whole or not at all: a crash or SIGKILL mid-write never leaves a torn checkpoint or result."""

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import RunError


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through `write` into a temporary file beside `path`, fsync, then rename it over `path`."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise RunError(
            f"could not write {path} ({error.strerror or error}); free space or fix the folder's permissions, "
            "then rerun the same command with trainer.resume=true."
        ) from error


def write_json(path: Path, record: dict) -> None:
    write_atomically(path, lambda handle: handle.write((json.dumps(record, indent=2) + "\n").encode()))
