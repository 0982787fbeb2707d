"""A trained flow back from its checkpoint: the settings it was trained with, checked, and the model rebuilt from
them and the data shape the checkpoint records, so sampling and lrsflows.load_flow need no dataset on disk."""

from pathlib import Path

import torch

from ..config import Config, ConfigError, DatasetConfig, TrainerConfig, saved_model_config, typed, validate_choices
from ..errors import RunError
from . import checkpoint
from .kinds import build_flow


def trained_settings(path: str | Path, state: dict) -> Config:
    """The checkpoint's config as typed settings, each value checked against this version's schema and registries
    (a RunError naming the setting and the checkpoint otherwise)."""
    path = Path(path)
    sections = {
        "trainer": lambda values: typed(TrainerConfig, values),
        "dataset": lambda values: typed(DatasetConfig, values),
        "model": saved_model_config,
    }
    settings = {name: checkpoint.saved_settings(path, state, name, read) for name, read in sections.items()}
    trained = Config(seed=state["config"]["seed"], **settings)
    try:
        validate_choices(trained)
    except ConfigError as error:
        problem = f"checkpoint {path} has a setting this version of lrsflows does not accept: config.{error}"
        raise checkpoint.EVALUATE.refuse(path, problem.rstrip(".")) from None
    return trained


def saved_shape(state: dict) -> tuple[int, ...] | None:
    """The shape of one example (features, or C, H, W) the checkpoint records; None for checkpoints of lrsflows
    before it recorded one."""
    data = state.get("data")
    shape = data.get("shape") if isinstance(data, dict) else None
    return tuple(shape) if isinstance(shape, list) and all(isinstance(size, int) for size in shape) else None


def rebuild(path: str | Path, state: dict, trained: Config, shape: tuple[int, ...], device) -> torch.nn.Module:
    """The checkpoint's flow for examples of `shape`, weights loaded (after checking they fit), in eval mode."""
    flow = build_flow(trained, shape, device)
    checkpoint.ensure_fits(path, state, flow, checkpoint.EVALUATE)
    flow.load_state_dict(state["model"])
    return flow.eval()


def missing_shape(path: str | Path) -> RunError:
    return RunError(
        f"checkpoint {path} was written before checkpoints recorded their data's shape, so its flow cannot be rebuilt "
        f"without the dataset; run `lrsflows task=sample ckpt={path}` with the dataset under the data root, or "
        "retrain it with this version."
    )
