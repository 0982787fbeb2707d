"""Use a trained flow in your own code: `lrsflows.load_flow(path)` from any best.pt or last.pt, no dataset needed."""

from dataclasses import dataclass
from pathlib import Path

import torch

from .flows import Flow
from .train import checkpoint, restore


@dataclass(frozen=True)
class TrainedRecord:
    """What a loaded flow was trained as: dataset and model (preset, family, arch), the resolved training config,
    the step the checkpoint was written at, the shape of one example, and (best.pt) its validation score, the
    mean log-likelihood in nats per example."""

    dataset: str
    data_kind: str
    model: str
    family: str
    arch: str
    config: dict
    step: int
    shape: tuple[int, ...]
    val_log_prob: float | None


def load_flow(path: str | Path, device: str | torch.device = "cpu") -> Flow:
    """The flow a training run saved at `path`, weights loaded, in eval mode, on `device`; its `record` attribute
    says what it was trained as (a TrainedRecord). Image flows take and sample dequantised pixels in
    [0, 2^num_bits); tabular flows work in the standardised units the dataset was trained in.

    A missing, damaged or foreign file, or a checkpoint of an lrsflows version that did not record the data's
    shape, is a RunError in one sentence.

    With `path` the checkpoints/best.pt of `lrsflows experiment=toy2d dataset=gaussian`:

    >>> import lrsflows
    >>> flow = lrsflows.load_flow(path)
    >>> flow.record.dataset, flow.record.family, tuple(flow.sample(5).shape)
    ('gaussian', 'lrs', (5, 2))
    """
    state = checkpoint.load(path, checkpoint.EVALUATE)
    trained = restore.trained_settings(path, state)
    shape = restore.saved_shape(state)
    if shape is None:
        raise restore.missing_shape(path)
    flow = restore.rebuild(path, state, trained, shape, torch.device(device))
    config = state["config"]
    flow.record = TrainedRecord(
        dataset=trained.dataset.name,
        data_kind=trained.dataset.kind,
        model=trained.model.name,
        family=trained.model.family,
        arch=trained.model.arch,
        config=config,
        step=state["step"],
        shape=shape,
        val_log_prob=state.get("val_log_prob"),
    )
    return flow
