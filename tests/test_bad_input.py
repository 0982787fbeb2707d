"""Bad input as a user meets it, each case a real subprocess: one `error:` sentence, a non-zero exit, no
traceback, and nothing on disk changed or half-written (settings, concurrency, signals)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from test_cli import TINY_2D, lrsflows, run_dir_of

TINY = [*TINY_2D, "dataset=checkerboard", "trainer.max_steps=20", "trainer.val_every=10"]


def start(arguments: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lrsflows", *arguments],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_one_sentence(completed, exit_code: int = 1) -> str:
    """Exit code as expected, exactly one `error:` line on stderr and no traceback anywhere; returns the line."""
    output = completed.stdout + completed.stderr
    assert completed.returncode == exit_code, output
    assert "Traceback" not in output, output
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, completed.stderr
    return errors[0]


def wait_until(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def snapshot(folder: Path) -> dict:
    """Every file under `folder` with its bytes and modification time."""
    return {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["trainer.batch_size=0"], "trainer.batch_size=0"),
        (["trainer.lr=-1"], "trainer.lr=-1.0"),
        (["model.num_bins=0"], "model.num_bins=0"),
        (["model.num_bins=1"], "model.num_bins=1"),
        (["model.hidden_features=0"], "model.hidden_features=0"),
        (["model.num_flow_steps=0"], "model.num_flow_steps=0"),
        (["trainer.val_every=0"], "trainer.val_every=0"),
        (["trainer.checkpoint_every=0"], "trainer.checkpoint_every=0"),
        (["trainer.log_every=0"], "trainer.log_every=0"),
        (["trainer.eval_batch_size=0"], "trainer.eval_batch_size=0"),
        (["trainer.max_steps=0"], "trainer.max_steps=0"),
        (["dataset.num_train=0"], "dataset.num_train=0"),
        (["model.min_bin_width=0.5"], "model.min_bin_width=0.5"),
        (["model.min_bin_height=0.1", "model.num_bins=10"], "model.min_bin_height=0.1"),
        (["model.dropout=1.5"], "model.dropout=1.5"),
        (["model.tail_bound=-1"], "model.tail_bound=-1.0"),
        (["trainer.grad_clip=-1"], "trainer.grad_clip=-1.0"),
        (["trainer.devices=0"], "trainer.devices=0"),
        (["trainer.batch_size=63", "trainer.devices=2"], "trainer.batch_size=63"),
        (["+trainer.lrr=1e-3"], "trainer.lrr"),
        (["temperature=-1"], "temperature=-1.0"),
        (["task=sample", "n=0", "ckpt=nowhere.pt"], "n=0"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_a_setting_outside_its_range_is_one_sentence_before_any_work(overrides, named, tmp_path):
    completed = lrsflows(*TINY, *overrides, cwd=tmp_path, check=False)
    line = assert_one_sentence(completed)
    assert named in line, line
    assert not [path for path in tmp_path.rglob("*") if path.is_file()], "a refused command wrote files"
    assert not list(tmp_path.rglob("seed0*")), "a refused command left its run dir"


def test_a_misspelt_key_added_with_plus_names_the_key_it_resembles(tmp_path):
    line = assert_one_sentence(lrsflows(*TINY, "+trainer.lrr=1e-3", cwd=tmp_path, check=False))
    assert "did you mean trainer.lr?" in line


def test_a_batch_larger_than_the_training_split_is_one_sentence_and_the_run_is_recorded_as_failed(tmp_path):
    completed = lrsflows(*TINY, "dataset.num_train=100", "trainer.batch_size=128", cwd=tmp_path, check=False)
    line = assert_one_sentence(completed)
    assert "trainer.batch_size=128 exceeds the 100 training examples" in line
    (failure,) = tmp_path.rglob("failure.json")
    assert json.loads(failure.read_text())["error"] in line
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("results.json"))


def test_a_refused_rerun_changes_nothing_on_disk(tmp_path):
    run = tmp_path / run_dir_of(lrsflows(*TINY, cwd=tmp_path))
    before = snapshot(run)
    line = assert_one_sentence(lrsflows(*TINY, cwd=tmp_path, check=False))
    assert "already holds a run" in line and "trainer.resume=true" in line
    assert snapshot(run) == before


def test_the_same_command_twice_at_once_is_refused_while_the_first_runs(tmp_path):
    long_run = [*TINY, "trainer.max_steps=100000", "trainer.checkpoint_every=50"]
    first = start(long_run, tmp_path)
    try:
        wait_until(lambda: list(tmp_path.rglob("last.pt")))
        run = next(tmp_path.rglob("last.pt")).parents[1]
        config_before = (run / ".hydra" / "config.yaml").stat().st_mtime_ns
        second = lrsflows(*long_run, "trainer.resume=true", cwd=tmp_path, check=False)
        line = assert_one_sentence(second)
        assert "another process is already running" in line and str(run) in line
        assert (run / ".hydra" / "config.yaml").stat().st_mtime_ns == config_before
        assert first.poll() is None, "the first run must go on"
        assert not [path for path in run.rglob("*.tmp")]
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 128 + signal.SIGTERM


def test_two_samplings_started_together_write_separate_folders(tmp_path):
    best = tmp_path / run_dir_of(lrsflows(*TINY, cwd=tmp_path)) / "checkpoints" / "best.pt"
    processes = [start(["task=sample", f"ckpt={best}", f"n={n}"], tmp_path) for n in (100, 200)]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    paths = [Path(output.strip().splitlines()[-1].removeprefix("samples: ")) for output in outputs]
    assert paths[0].parent != paths[1].parent
    assert [len(torch.from_numpy(__import__("numpy").load(path))) for path in paths] == [100, 200]


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_starting_is_one_sentence_and_its_exit_code(number, tmp_path):
    process = start(TINY, tmp_path)
    time.sleep(0.3)  # inside the interpreter's imports or Hydra's composition
    process.send_signal(number)
    stdout, stderr = process.communicate(timeout=60)
    line = assert_one_sentence(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), 128 + number)
    assert f"stopped by {signal.Signals(number).name}" in line


def test_a_signal_during_the_final_evaluation_resumes_to_the_uninterrupted_result(tmp_path):
    """The last step's checkpoint is on disk, the test split is being scored: SIGTERM ends it in one sentence,
    and trainer.resume=true scores it to exactly what a run never interrupted gives."""
    slow_test = [*TINY, "dataset.num_test=3000000", "trainer.eval_batch_size=65536"]
    (tmp_path / "whole").mkdir()
    (tmp_path / "stopped").mkdir()
    whole = tmp_path / "whole" / run_dir_of(lrsflows(*slow_test, cwd=tmp_path / "whole"))
    process = start(slow_test, tmp_path / "stopped")
    last = tmp_path / "stopped" / whole.relative_to(tmp_path / "whole") / "checkpoints" / "last.pt"
    wait_until(lambda: last.exists() and torch.load(last, weights_only=True)["step"] == 20)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    line = assert_one_sentence(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), 143)
    assert "trainer.resume=true" in line
    assert not (last.parents[1] / "results.json").exists() and not (last.parents[1] / "failure.json").exists()
    lrsflows(*slow_test, "trainer.resume=true", cwd=tmp_path / "stopped")
    resumed = json.loads((last.parents[1] / "results.json").read_text())
    original = json.loads((whole / "results.json").read_text())
    assert (resumed["value"], resumed["error"], resumed["kl_gap"]) == (original["value"], original["error"], original["kl_gap"])


def test_a_divergence_says_what_is_on_disk_and_its_advice_is_a_command_that_continues(tmp_path):
    """A good run, then a continuation of it at a learning rate that diverges: each message names the checkpoint
    that holds the last good step and ends with a command; run as given, the commands continue that checkpoint
    at a tenth of the learning rate each time until training completes."""
    good = tmp_path / run_dir_of(lrsflows(*TINY, cwd=tmp_path)) / "checkpoints" / "last.pt"
    command = [*TINY, "trainer.max_steps=40", "trainer.lr=1e6", f"trainer.resume_from={good}"]
    lines = []
    for _ in range(5):
        completed = lrsflows(*command, cwd=tmp_path, check=False)
        if completed.returncode == 0:
            break
        line = assert_one_sentence(completed)
        lines.append(line)
        held = Path(line.split("nothing was updated at that step and ")[1].split(" holds step ")[0])
        step = int(line.split(" holds step ")[1].split(";")[0])
        assert torch.load(held, weights_only=True)["step"] == step >= 20
        command = line.split("continue it with a lower learning rate: python -m lrsflows ")[1].split()
        assert f"trainer.resume_from={held}" in command
    assert completed.returncode == 0 and lines, lines
    assert "resuming" in completed.stdout and " from " in completed.stdout
    record = json.loads((tmp_path / run_dir_of(completed) / "results.json").read_text())
    assert record["steps"] == 40 and record["config"]["trainer"]["resume_from"] is not None
