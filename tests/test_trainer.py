"""The training loop's handling of a non-finite step: no host sync per step, the bad update skipped on the device,
the run stopped at the next logging, validation or checkpoint step naming the first bad step, last.pt older."""

import math

import pytest
import torch

from lrsflows.config import TrainerConfig
from lrsflows.flows import build_tabular_flow
from lrsflows.splines import SplineSettings
from lrsflows.train import checkpoint
from lrsflows.train.distributed import Process
from lrsflows.train.trainer import Diverged, Trainer

BAD_STEP = 5  # 1-based, as the trainer counts


class PoisonedBatches:
    """Gaussian batches, one of them (the BAD_STEP-th) holding a NaN; resumable like the real streams."""

    def __init__(self):
        self.generator = torch.Generator().manual_seed(0)
        self.drawn = 0

    def __next__(self) -> torch.Tensor:
        self.drawn += 1
        batch = torch.randn(64, 3, generator=self.generator)
        if self.drawn == BAD_STEP:
            batch[7, 1] = math.nan
        return batch

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.drawn = state["drawn"]


def trainer_with_poison(tmp_path, **settings) -> Trainer:
    torch.manual_seed(0)
    flow = build_tabular_flow(3, num_flow_steps=2, hidden_features=8, num_blocks=1, spline=SplineSettings(num_bins=4))
    config = TrainerConfig(max_steps=20, progress_bar=False, val_every=1000, **settings)
    validation = [torch.randn(32, 3)]
    return Trainer(
        flow, PoisonedBatches(), lambda: validation, config, tmp_path, None, {}, Process(0, 1, torch.device("cpu"))
    )


def test_a_nan_at_a_known_step_stops_at_the_next_checkpoint_with_last_pt_before_it(tmp_path):
    trainer = trainer_with_poison(tmp_path, checkpoint_every=3, log_every=10)
    syncs = []
    real_item = torch.Tensor.item

    def counting_item(tensor):  # every host sync through .item() while training
        syncs.append(trainer.step)
        return real_item(tensor)

    torch.Tensor.item = counting_item
    try:
        with pytest.raises(Diverged) as stopped:
            trainer.fit()
    finally:
        torch.Tensor.item = real_item
    assert stopped.value.step == BAD_STEP and stopped.value.saved_step == 3
    assert f"at step {BAD_STEP} " in str(stopped.value) and "the run stopped at step 6" in str(stopped.value)
    assert "skipped" in str(stopped.value)
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["step"] == 3
    parameters = [parameter for parameter in trainer.flow.parameters()]
    assert all(torch.isfinite(parameter).all() for parameter in parameters)
    # Adam counted the good steps only: the skipped update left its moments and step counters unchanged.
    steps = {float(value["step"]) for value in trainer.optimizer.state_dict()["state"].values()}
    assert steps == {BAD_STEP}  # steps 1-4 and 6 updated, 5 was skipped
    assert not [step for step in syncs if step not in (3, 6)], f".item() synced at steps {syncs}"


def test_without_a_due_step_the_bad_step_is_reported_at_the_next_log(tmp_path):
    trainer = trainer_with_poison(tmp_path, checkpoint_every=1000, log_every=8)
    with pytest.raises(Diverged, match=f"at step {BAD_STEP} .*the run stopped at step 8 and no checkpoint"):
        trainer.fit()
