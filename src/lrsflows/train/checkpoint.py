"""Checkpoints that are written atomically and load with `torch.load(weights_only=True)`.

Everything stored is a tensor, a number, a string or a list/dict of those (RNG states included), so opening
a checkpoint someone sent you cannot run code, and a crash or a SIGKILL mid-write never leaves a torn file.
A checkpoint is checked against what reads it (its entries, its settings, its tensors' names and shapes) before
any state is loaded, so one that does not fit is refused with one sentence, not a traceback or a wrong model.
"""

import dataclasses
import random
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from omegaconf.errors import OmegaConfBaseException

from ..errors import RunError
from ..files import write_atomically

Settings = TypeVar("Settings")


@dataclasses.dataclass(frozen=True)
class Use:
    """What a task reads from a checkpoint (dotted key: type) and what to tell the user when it does not fit;
    `remedy` may name the checkpoint's {run_dir}."""

    needs: dict[str, type | tuple[type, ...]]
    remedy: str

    def refuse(self, path: Path, problem: str, other_way: str = "") -> RunError:
        """The one-sentence error for `problem` with `path`: the problem, then what to do instead."""
        return RunError(f"{problem}; {other_way}{self.remedy.format(run_dir=path.parent.parent)}.")


NUMBER = (int, float)
# What eval and sample read (provenance reads the saved names as they are, so they must be there).
WEIGHTS = {
    "config.seed": int,
    "config.trainer": dict,
    "config.dataset.name": str,
    "config.dataset.kind": str,
    "config.model.name": str,
    "config.model.family": str,
    "config.model.arch": str,
    "model": dict,
    "step": int,
}
EVALUATE = Use(WEIGHTS, "pass ckpt=<run dir>/checkpoints/best.pt of a run trained by this version of lrsflows")
RESUME = Use(
    {
        **WEIGHTS,
        **dict.fromkeys(["optimizer", "scheduler", "scaler", "batches"], dict),
        **{"rng": list, "best_val": NUMBER, "best_step": int, "elapsed": NUMBER},
    },
    "start a new run instead (remove {run_dir} or choose another paths.output_dir)",
)


def save(state: dict, path: Path) -> None:
    write_atomically(path, lambda handle: torch.save(state, handle))


def load(path: str | Path, use: Use | None = None) -> dict:
    """Load a checkpoint without unpickling code; a missing or damaged file, or (given `use`) one without an
    entry that use reads, is a RunError naming it."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist; pass ckpt=<run dir>/checkpoints/best.pt of a finished run.")
    try:
        # Memory-mapped: the checks before a resume (settings, the step a divergence reports) read a few entries
        # of what may be a large image checkpoint; tensors are read only when a state is actually loaded.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:
        problem = (
            f"checkpoint {path} cannot be read ({type(error).__name__}); it is damaged or not an lrsflows checkpoint"
        )
        raise (use.refuse(path, problem) if use else RunError(f"{problem}.")) from error
    if use is not None:
        _check_entries(state, path, use)
    return state


def _check_entries(state, path: Path, use: Use) -> None:
    """Every entry `use` reads is there with the type lrsflows writes, so reading it later cannot fail."""
    if not isinstance(state, dict):
        kind = type(state).__name__
        raise use.refuse(
            path, f"checkpoint {path} holds a {kind}, not the dict of settings and model state lrsflows writes"
        )
    for key, kind in use.needs.items():
        value, seen = state, []
        for part in key.split("."):
            if not isinstance(value, dict):
                raise use.refuse(path, _wrong_type(path, ".".join(seen), value, dict))
            seen.append(part)
            if part not in value:
                problem = (
                    f"checkpoint {path} has no '{'.'.join(seen)}' entry, so it is not a complete lrsflows checkpoint"
                )
                raise use.refuse(path, problem)
            value = value[part]
        if not isinstance(value, kind):
            raise use.refuse(path, _wrong_type(path, key, value, kind))


def _wrong_type(path: Path, key: str, value, kind: type | tuple[type, ...]) -> str:
    expected = " or ".join(each.__name__ for each in (kind if isinstance(kind, tuple) else (kind,)))
    return f"checkpoint {path} has '{key}' of type {type(value).__name__}, not {expected} as lrsflows writes it"


def saved_settings(path: str | Path, state: dict, section: str, read: Callable[[dict], Settings]) -> Settings:
    """The checkpoint's config.<section> through `read` (its schema); a value the schema rejects (an enum value
    this version does not have, a key it does not know) is a RunError naming the key, not OmegaConf's traceback."""
    path = Path(path)
    try:
        return read(state["config"][section])
    except OmegaConfBaseException as error:
        reason = str(error.msg).splitlines()[0] if error.msg else type(error).__name__
        raise EVALUATE.refuse(
            path,
            f"checkpoint {path} has a config.{section}.{error.full_key} this version of lrsflows does not accept "
            f"({reason[:1].lower() + reason[1:]})",
        ) from error


def resumable(path: Path, flow: torch.nn.Module, settings: dict) -> dict:
    """`path` (a run's last.pt) loaded to resume the run of `settings` (its plain config) with `flow`; refused
    before any state is loaded or any file written when it is another run's, or not a whole checkpoint."""
    state = load(path, RESUME)
    ensure_fits(path, state, flow, RESUME, settings)
    return state


def ensure_same_run(path: str | Path, state: dict, settings: dict) -> None:
    """Refuse a last.pt (loaded with RESUME) whose model or dataset settings differ from the run's `settings`,
    naming the first difference; it needs no model, so the CLI checks it before writing anything."""
    path = Path(path)
    for section in ("model", "dataset"):
        saved, ours = state["config"][section], settings[section]
        for key in [*ours, *(key for key in saved if key not in ours)]:
            if key not in saved or key not in ours or saved[key] != ours[key]:
                old, new = (
                    f"{section}.{key}={row[key]}" if key in row else f"no {section}.{key}" for row in (saved, ours)
                )
                override = f"{section}={saved[key]}" if key == "name" else old
                raise RESUME.refuse(
                    path,
                    f"{path} is another run's checkpoint: it was trained with {old}, this run has {new}",
                    f"resume it with the settings it was trained with ({override}), or " if key in saved else "",
                )


def ensure_fits(path: str | Path, state: dict, flow: torch.nn.Module, use: Use, settings: dict | None = None) -> None:
    """Refuse a checkpoint whose tensors are not `flow`'s (and, given the run's `settings`, whose model or dataset
    differs from the run's), naming the first difference: load_state_dict would end in a traceback, and another
    run's last.pt whose shapes happen to fit would silently continue the wrong model."""
    path = Path(path)
    saved_config = state["config"]
    if settings is not None:
        ensure_same_run(path, state, settings)
    model = (settings or saved_config)["model"]
    described = f"{model['name']} model (family {model['family']}, {model['arch']})"
    whose = f"this run's {described}" if settings is not None else f"the {described} its saved settings describe"
    expected, weights = flow.state_dict(), state["model"]
    for name in [*expected, *(name for name in weights if name not in expected)]:
        if name not in weights:
            problem = f"checkpoint {path} has no tensor {name}, which {whose} has"
        elif name not in expected:
            problem = f"checkpoint {path} holds a tensor {name}, which {whose} does not have"
        elif not isinstance(weights[name], torch.Tensor):
            problem = f"checkpoint {path} holds a {type(weights[name]).__name__} as {name} where a tensor belongs"
        elif weights[name].shape != expected[name].shape:
            problem = (
                f"tensor {name} has shape {tuple(weights[name].shape)} in checkpoint {path} but "
                f"{tuple(expected[name].shape)} in {whose}"
            )
        else:
            continue
        raise use.refuse(path, problem)


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
