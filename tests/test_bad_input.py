"""Bad input as a user meets it, each case a real subprocess: one `error:` sentence, a non-zero exit, no
traceback, and nothing on disk changed or half-written (settings, concurrency, signals, full and read-only disks)."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_cli import TINY_2D, lrsflows, run_dir_of, start

TINY = [*TINY_2D, "dataset=checkerboard", "trainer.max_steps=20", "trainer.val_every=10"]


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


def catches(pid: int, number: int) -> bool:
    """Whether process `pid` has installed a handler for signal `number` (its SigCgt mask in /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(mask >> (number - 1) & 1)


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


@pytest.mark.parametrize(
    "overrides, named",
    [
        ([*TINY, "model.family=splne"], "model.family='splne' is not one of the choices: lrs, rq, quadratic"),
        (
            [*TINY, "model.linear=householder"],
            "model.linear='householder' is not one of the choices: lu, permutation, none",
        ),
        (
            [*TINY, "model.unconditional_init=zeros"],
            "model.unconditional_init='zeros' is not one of the choices: original",
        ),
        # A setting another data kind reads would be ignored, yet name the run dir: refused, the key named.
        (
            [*TINY, "model.num_levels=3"],
            "model.num_levels=3 applies only to image data, but dataset checkerboard is toy2d",
        ),
        ([*TINY, "dataset.flip=true"], "dataset.flip=True applies only to image data"),
        ([*TINY, "dataset=power", "dataset.num_train=10"], "dataset.num_train=10 applies only to toy2d data"),
        (
            ["experiment=paper/mnist", "dataset=rings"],
            "model.num_levels=2 applies only to image data, but dataset rings",
        ),
        (["experiment=smoke/images", "model.linear=lu"], "model.linear='lu' applies only to tabular and toy2d data"),
    ],
    ids=lambda value: (
        " ".join(value[len(TINY) :] if value[: len(TINY)] == TINY else value) if isinstance(value, list) else None
    ),
)
def test_a_choice_outside_its_registry_or_kind_is_one_sentence_and_leaves_nothing(overrides, named, tmp_path):
    completed = lrsflows(*overrides, cwd=tmp_path, check=False)
    line = assert_one_sentence(completed)
    assert named in line, line
    assert not list(tmp_path.iterdir()), "a refused command left files or folders"
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
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 128 + signal.SIGTERM
    assert not list(run.rglob("*.tmp")), "a temporary file was left behind"


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
    """Sent as soon as the entry point handles signals (before torch and Hydra are imported), however slow the
    machine: the kernel's record of the process's caught signals says when."""
    process = start(TINY, tmp_path)
    wait_until(lambda: catches(process.pid, signal.SIGTERM) or process.poll() is not None)
    time.sleep(0.05)  # SIGINT's handler follows SIGTERM's in the same loop
    process.send_signal(number)
    stdout, stderr = process.communicate(timeout=60)
    line = assert_one_sentence(
        subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), 128 + number
    )
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
    assert (resumed["value"], resumed["error"], resumed["kl_gap"]) == (
        original["value"],
        original["error"],
        original["kl_gap"],
    )


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
        on_disk = re.search(r"update was skipped(?:; the run stopped at step \d+)? and (\S+) holds step (\d+);", line)
        held, step = Path(on_disk[1]), int(on_disk[2])
        assert torch.load(held, weights_only=True)["step"] == step >= 20
        command = line.split("continue it with a lower learning rate: python -m lrsflows ")[1].split()
        assert f"trainer.resume_from={held}" in command
    assert completed.returncode == 0 and lines, lines
    assert "resuming" in completed.stdout and " from " in completed.stdout
    record = json.loads((tmp_path / run_dir_of(completed) / "results.json").read_text())
    assert record["steps"] == 40 and record["config"]["trainer"]["resume_from"] is not None


@pytest.fixture
def small_disk(tmp_path, request):
    """A tmpfs of `kib` KiB (root only; the test is skipped where mounting is refused), unmounted afterwards."""

    def mount(kib: int) -> Path:
        disk = tmp_path / "disk"
        disk.mkdir()
        command = ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(disk)]
        mounted = subprocess.run(command, capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"a small tmpfs to fill cannot be mounted here ({mounted.stderr.strip()}); it needs root")
        request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(disk)], check=False))
        return disk

    return mount


def fill(disk: Path, leave_kib: int = 0) -> Path:
    """Take all of `disk`'s free space but `leave_kib` KiB with one file."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler.write_bytes(bytes(free - leave_kib * 1024))
    return filler


def remount(disk: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], check=True)


def assert_nothing_half_written(folder: Path) -> None:
    assert not list(folder.rglob("*.tmp")) and not list(folder.rglob("results.json")), sorted(folder.rglob("*"))
    assert not list(folder.rglob("failure.json")), "a run the disk stopped is unfinished, not failed"


@pytest.mark.parametrize(
    "disk_state, sentence",
    [
        (
            "full",
            "/.hydra/config.yaml (No space left on device); free space or make the folder writable, then "
            f"finish it with `{sys.executable} -m lrsflows experiment=toy2d ",
        ),
        ("ro", " (Read-only file system); choose a writable one with paths.output_dir=<folder>."),
    ],
    ids=["full", "read-only"],
)
def test_a_full_or_read_only_disk_at_the_start_is_one_sentence(disk_state, sentence, small_disk, tmp_path):
    disk = small_disk(256)
    if disk_state == "full":
        fill(disk)
    else:
        remount(disk, "ro")
    line = assert_one_sentence(lrsflows(*TINY, f"paths.output_dir={disk}/out", cwd=tmp_path, check=False))
    assert sentence in line and line.endswith(("trainer.resume=true`.", "paths.output_dir=<folder>.")), line
    assert_nothing_half_written(disk)


@pytest.mark.parametrize(
    "free_kib, unwritten",
    # Measured on this TINY run: config 12 KiB, best.pt 20, last.pt 96 (at the last step), the picture 149,
    # then TensorBoard's figure 120 and results.json.
    [(64, "checkpoints/last.pt"), (180, "pictures/density_step0000020.png"), (300, "tensorboard")],
    ids=["checkpoint", "picture", "tensorboard"],
)
def test_a_disk_filling_up_during_training_is_one_sentence_naming_the_file(free_kib, unwritten, small_disk, tmp_path):
    disk = small_disk(1024)
    fill(disk, leave_kib=free_kib)
    line = assert_one_sentence(lrsflows(*TINY, f"paths.output_dir={disk}/out", cwd=tmp_path, check=False))
    run = next(disk.rglob(".hydra")).parent
    assert f"could not write {run}/{unwritten} (No space left on device)" in line, line
    resume = shlex.join(
        [sys.executable, "-m", "lrsflows", *TINY, f"paths.output_dir={disk}/out", "trainer.resume=true"]
    )
    assert line.endswith(f"then finish it with `{resume}`."), line  # the exact command that continues it
    assert_nothing_half_written(disk)


def test_a_resumed_run_whose_disk_fills_again_or_turns_read_only_resumes_once_freed(small_disk, tmp_path):
    """The disk fills up (at step 40's checkpoint), fills up again after the resume from step 20, then turns
    read-only: each is one sentence, and once there is room the run finishes with every TensorBoard step written
    once (none lost, none doubled)."""
    disk = small_disk(1024)
    settings = [*TINY, "trainer.max_steps=40", "trainer.checkpoint_every=20", f"paths.output_dir={disk}/out"]
    lines = []
    for resume, state in (([], "full"), (["trainer.resume=true"], "full"), (["trainer.resume=true"], "ro")):
        (disk / "filler").unlink(missing_ok=True)
        if state == "full":
            fill(disk, leave_kib=180)
        else:
            remount(disk, "ro")
        lines.append(assert_one_sentence(lrsflows(*settings, *resume, cwd=tmp_path, check=False)))
        assert_nothing_half_written(disk)
    assert [line.split(" (")[1].split(")")[0] for line in lines] == [
        "No space left on device",
        "No space left on device",
        "Read-only file system",
    ], lines
    resume = shlex.join([sys.executable, "-m", "lrsflows", *settings, "trainer.resume=true"])
    assert all(line.endswith(f"then finish it with `{resume}`.") for line in lines), lines
    remount(disk, "rw")
    run = run_dir_of(lrsflows(*settings, "trainer.resume=true", cwd=tmp_path))
    assert json.loads((run / "results.json").read_text())["steps"] == 40
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    assert [event.step for event in events.Scalars("train/loss")] == [10, 20, 30, 40]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("checkpoint")
    return work / run_dir_of(lrsflows(*TINY, cwd=work)) / "checkpoints" / "best.pt"


@pytest.mark.parametrize("task", ["eval", "sample"])
def test_eval_or_sample_into_a_full_folder_is_one_sentence_saying_rerun(task, tiny_checkpoint, small_disk, tmp_path):
    """eval is refused at its first file; sample (10000 samples: 80 KiB) after its config files."""
    disk = small_disk(64)
    if task == "eval":
        fill(disk)
    overrides = [f"task={task}", f"ckpt={tiny_checkpoint}", f"paths.output_dir={disk}"]
    line = assert_one_sentence(lrsflows(*overrides, cwd=tmp_path, check=False))
    unwritten = ".hydra/config.yaml" if task == "eval" else "samples.npy"
    assert f"could not write {disk}/{task}/" in line and f"/{unwritten} (" in line, line
    assert line.endswith("free space or make the folder writable, then rerun the command."), line
    assert_nothing_half_written(disk)
