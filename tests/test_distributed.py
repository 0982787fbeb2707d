"""Data parallelism, signals, precision and compilation, with real processes (gloo on CPU)."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_bad_input import assert_one_sentence
from test_cli import TINY_2D, lrsflows, run_dir_of, start

from lrsflows.flows import build_tabular_flow
from lrsflows.splines import SplineSettings
from lrsflows.train import distributed
from lrsflows.transforms.normalization import ActNorm

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


def wait_for(path: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.exists(), f"{path} never appeared"


INTERRUPTED = [*SMALL_RUN, "trainer.max_steps=300", "trainer.checkpoint_every=20", "trainer.devices=2"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("whole")
    return work / run_dir_of(lrsflows(*INTERRUPTED, cwd=work))


@pytest.mark.parametrize("how", ["SIGKILL to every process", "SIGTERM to the launcher"])
def test_an_interrupted_data_parallel_run_resumes_to_the_uninterrupted_result(how, uninterrupted, tmp_path):
    """Killed outright, or stopped by SIGTERM to the launcher that started the workers (one sentence, exit 143):
    trainer.resume=true continues from last.pt to exactly the uninterrupted run's model and result."""
    run = tmp_path / uninterrupted.relative_to(uninterrupted.parents[4])  # outputs/runs/<dataset>/<model>/<name>
    process = start(INTERRUPTED, tmp_path)
    wait_for(run / "checkpoints" / "last.pt")
    time.sleep(0.5)
    if how == "SIGKILL to every process":
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    else:
        process.send_signal(signal.SIGTERM)
        line = only_sentence(finished(process), 128 + signal.SIGTERM)
        assert "stopped by SIGTERM" in line and "trainer.resume=true" in line, line
    assert 0 < torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] < 300
    assert not (run / "results.json").exists() and not (run / "failure.json").exists()
    lrsflows(*INTERRUPTED, "trainer.resume=true", cwd=tmp_path)
    for name, tensor in final_parameters(uninterrupted).items():
        assert torch.equal(tensor, final_parameters(run)[name]), name
    resumed, whole = (json.loads((folder / "results.json").read_text()) for folder in (run, uninterrupted))
    assert resumed["value"] == whole["value"]


def test_a_worker_killed_by_sigkill_is_one_sentence_naming_its_rank_and_the_other_stops(tmp_path):
    """A killed worker cannot speak for itself and breaks the group for the other, whose error must not hide it."""
    process = start([*INTERRUPTED, "trainer.max_steps=100000"], tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.rglob("last.pt")):
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.02)
        # The launcher's children: the resource tracker and the workers, started in rank order.
        workers = sorted(
            int(pid)
            for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
        assert len(workers) == 2, workers
        os.kill(workers[1], signal.SIGKILL)
        killed = time.monotonic()
        line = only_sentence(finished(process))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert time.monotonic() - killed < 15
    assert line.startswith("error: training process 1 of 2 was killed by SIGKILL"), line
    assert not Path(f"/proc/{workers[0]}").exists(), "the other worker outlived the launcher"
    assert not list(tmp_path.rglob("failure.json")), "a run stopped by a killed process is unfinished, not failed"


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def only_sentence(completed: subprocess.CompletedProcess, exit_code: int = 1) -> str:
    """The one `error:` sentence, and nothing else on stderr: no log lines or warnings of torch's launcher."""
    line = assert_one_sentence(completed, exit_code)
    assert completed.stderr.strip() == line, completed.stderr
    return line


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
        (
            tmp_path / run_dir_of(lrsflows(*settings, "trainer.precision=bf16", cwd=tmp_path)) / "results.json"
        ).read_text()
    )
    assert all(map(torch.isfinite, map(torch.tensor, (bf16["value"], bf16["kl_gap"]))))
    assert bf16["value"] == pytest.approx(fp32["value"], abs=0.1)


def test_compiled_log_prob_equals_eager():
    flow = build_tabular_flow(
        4, "lrs", num_flow_steps=2, hidden_features=16, num_blocks=1, spline=SplineSettings(num_bins=4)
    )
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
