"""Data parallelism, signals, precision and compilation, with real processes (gloo on CPU)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lrsflows.flows import build_tabular_flow
from lrsflows.train import distributed
from lrsflows.transforms.normalization import ActNorm
from test_cli import TINY_2D, lrsflows, run_dir_of

# Evaluation batches of 256 split validation and test over the processes.
SMALL_RUN = [*TINY_2D, "dataset=crescent", "trainer.log_every=1", "trainer.val_every=10", "trainer.eval_batch_size=256"]


def losses(run: Path) -> list[float]:
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    return [event.value for event in events.Scalars("train/loss")]


def final_parameters(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path):
    settings = [*SMALL_RUN, "trainer.precision=fp64", "trainer.max_steps=20"]
    one = tmp_path / run_dir_of(lrsflows(*settings, cwd=tmp_path))
    two = tmp_path / run_dir_of(lrsflows(*settings, "trainer.devices=2", cwd=tmp_path))
    assert losses(one) == pytest.approx(losses(two), abs=1e-6) and len(losses(two)) == 20
    single, parallel = (json.loads((run / "results.json").read_text()) for run in (one, two))
    assert parallel["processes"] == 2 and parallel["num_test"] == single["num_test"]
    for key in ("value", "error", "kl_gap", "best_val"):
        assert parallel[key] == pytest.approx(single[key], abs=1e-9), key
    for name, tensor in final_parameters(one).items():
        assert torch.allclose(tensor, final_parameters(two)[name], atol=1e-9), name
    # Exactly one run dir (and results.json) per run: the second process wrote none of its own.
    assert sorted(path.parent for path in tmp_path.rglob(".hydra")) == sorted([one, two])
    assert len(list(tmp_path.rglob("results.json"))) == 2


def start(settings: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lrsflows", *settings],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so a kill reaches the launcher's children too
    )


def wait_for(path: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.exists(), f"{path} never appeared"


def test_a_killed_data_parallel_run_resumes_to_the_uninterrupted_result(tmp_path):
    settings = [*SMALL_RUN, "trainer.max_steps=300", "trainer.checkpoint_every=20", "trainer.devices=2"]
    (tmp_path / "whole").mkdir()
    (tmp_path / "killed").mkdir()
    whole = tmp_path / "whole" / run_dir_of(lrsflows(*settings, cwd=tmp_path / "whole"))
    run = tmp_path / "killed" / whole.relative_to(tmp_path / "whole")
    process = start(settings, tmp_path / "killed")
    wait_for(run / "checkpoints" / "last.pt")
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 0 < torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] < 300
    assert not (run / "results.json").exists()
    lrsflows(*settings, "trainer.resume=true", cwd=tmp_path / "killed")
    for name, tensor in final_parameters(whole).items():
        assert torch.equal(tensor, final_parameters(run)[name]), name
    assert json.loads((run / "results.json").read_text())["value"] == json.loads((whole / "results.json").read_text())["value"]


def test_sigterm_writes_a_loadable_last_checkpoint_and_the_same_command_resumes(tmp_path):
    settings = [*SMALL_RUN, "trainer.max_steps=100000", "trainer.checkpoint_every=50", "trainer.resume=true"]
    steps = []
    for attempt in range(2):
        process = start(settings, tmp_path)
        deadline = time.monotonic() + 120
        while not (found := list(tmp_path.rglob("last.pt"))) or _step(found[0]) <= (steps[-1] if steps else 0):
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 128 + signal.SIGTERM  # as a shell reports a process ended by SIGTERM
        assert "stopped by SIGTERM" in stderr and "trainer.resume=true" in stderr and "Traceback" not in stderr
        steps.append(_step(found[0]))
        if attempt:
            assert f"at step {steps[0]}" in stdout  # the second start continued the first one's run
    assert steps[1] > steps[0] > 0


def _step(last: Path) -> int:
    return torch.load(last, weights_only=True)["step"]


def test_bf16_autocast_trains_without_nan_close_to_fp32(tmp_path):
    settings = [*SMALL_RUN, "trainer.max_steps=150", "trainer.log_every=10"]
    fp32 = json.loads((tmp_path / run_dir_of(lrsflows(*settings, cwd=tmp_path)) / "results.json").read_text())
    bf16 = json.loads(
        (tmp_path / run_dir_of(lrsflows(*settings, "trainer.precision=bf16", cwd=tmp_path)) / "results.json").read_text()
    )
    assert all(map(torch.isfinite, map(torch.tensor, (bf16["value"], bf16["kl_gap"]))))
    assert bf16["value"] == pytest.approx(fp32["value"], abs=0.1)


def test_compiled_log_prob_equals_eager():
    flow = build_tabular_flow(4, "lrs", num_flow_steps=2, hidden_features=16, num_blocks=1, num_bins=4)
    inputs = torch.randn(256, 4)
    with torch.no_grad():
        assert torch.allclose(torch.compile(flow)(inputs), flow.log_prob(inputs), atol=1e-5)


def global_batch() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, 4, 4, generator=generator) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) + 5


def actnorm_initialised_on_this_process_share() -> list:
    """Run in each of two processes: initialise ActNorm on this process's half of the global batch."""
    process = distributed.join("cpu")
    try:
        layer = ActNorm(3)
        layer(global_batch().chunk(process.world_size)[process.rank])
        return distributed.gather_objects([layer.log_scale.detach(), layer.shift.detach()], process)
    finally:
        distributed.leave()


def test_actnorm_starts_identically_on_every_process_from_the_whole_global_batch():
    per_process = distributed.launch(2, actnorm_initialised_on_this_process_share)
    reference = ActNorm(3)
    reference(global_batch())
    for log_scale, shift in per_process:
        assert torch.allclose(log_scale, reference.log_scale.detach(), atol=1e-6)
        assert torch.allclose(shift, reference.shift.detach(), atol=1e-6)
