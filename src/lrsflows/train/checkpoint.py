"""Checkpoints that are written atomically and load with `torch.load(weights_only=True)`.

Everything stored is a tensor, a number, a string or a list/dict of those (RNG states included), so opening
a checkpoint someone sent you cannot run code, and a crash or a SIGKILL mid-write never leaves a torn file.
"""

import random
from pathlib import Path

import numpy as np
import torch

from ..errors import RunError
from .files import write_atomically


def save(state: dict, path: Path) -> None:
    write_atomically(path, lambda handle: torch.save(state, handle))


def load(path: str | Path) -> dict:
    """Load a checkpoint without unpickling code; a missing or damaged file is a RunError naming it."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist; pass ckpt=<run dir>/checkpoints/best.pt of a finished run.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise RunError(f"checkpoint {path} cannot be read ({type(error).__name__}); it is damaged or not an lrsflows checkpoint.") from error


def rng_state() -> dict:
    """Every random state a training step can touch, in weights-only-loadable types."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "python": [version, list(internal), gauss_next],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
