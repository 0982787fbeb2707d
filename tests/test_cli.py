"""The entry point as a user runs it: real subprocesses, real files, real TensorBoard event files."""

import gzip
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lrsflows.results import collect

# A 2-D run small enough to take a second or two of training.
TINY_2D = [
    "experiment=toy2d",
    "dataset.num_train=4096",
    "dataset.num_val=1024",
    "dataset.num_test=2048",
    "model.num_flow_steps=2",
    "model.hidden_features=16",
    "model.num_blocks=1",
    "model.num_bins=4",
    "trainer.batch_size=128",
    "trainer.progress_bar=false",
]


def environment(extra: dict | None = None) -> dict:
    """A user's environment for the CLI: one thread, no data root but the one a test passes."""
    inherited = {key: value for key, value in os.environ.items() if key != "LRSFLOWS_DATA_DIR"}
    return {**inherited, "OMP_NUM_THREADS": "1", **(extra or {})}


def lrsflows(*overrides: str, cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m lrsflows ...` in `cwd` with one thread, as a user would run it."""
    completed = subprocess.run(
        [sys.executable, "-m", "lrsflows", *overrides],
        cwd=cwd,
        env=environment(env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"lrsflows {' '.join(overrides)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed


def start(arguments: list[str], cwd: Path) -> subprocess.Popen:
    """`python -m lrsflows ...` started in the background (output captured), in its own process group so a signal
    to the group reaches a launcher's workers too."""
    return subprocess.Popen(
        [sys.executable, "-m", "lrsflows", *arguments],
        cwd=cwd,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_dir_of(completed: subprocess.CompletedProcess) -> Path:
    line = next(line for line in completed.stdout.splitlines() if line.startswith("results: "))
    return Path(line.removeprefix("results: ")).parent


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One short 2-D training run shared by the checks on what a run leaves behind."""
    work = tmp_path_factory.mktemp("train")
    completed = lrsflows(
        *TINY_2D,
        "dataset=eight_gaussians",
        "trainer.max_steps=60",
        "trainer.val_every=20",
        "trainer.log_every=10",
        "trainer.checkpoint_every=20",
        cwd=work,
    )
    return work / run_dir_of(completed)


def test_a_run_writes_results_checkpoints_config_and_pictures(trained_run):
    record = json.loads((trained_run / "results.json").read_text())
    assert record["dataset"] == "eight_gaussians" and record["model"] == "lrs" and record["arch"] == "coupling"
    assert record["metric"] == "test_log_likelihood" and record["num_test"] == 2048 and record["steps"] == 60
    assert record["best_step"] in (20, 40, 60) and record["error"] > 0 and record["num_parameters"] > 0
    assert record["kl_gap"] == pytest.approx(record["true_log_prob"] - record["value"], abs=1e-9)
    # Minus the entropy of eight well-separated N(centre, sigma^2 I) with sigma = 0.5/1.414, weights 1/8.
    sigma_squared = (0.5 / 1.414) ** 2
    assert record["true_log_prob"] == pytest.approx(
        -(math.log(2 * math.pi * math.e * sigma_squared) + math.log(8)), abs=0.05
    )
    assert len(record["git_revision"]) >= 40 and record["wall_time_s"] > 0
    assert (trained_run / ".hydra" / "config.yaml").is_file()
    run_log = (trained_run / "run.log").read_text()  # what the run said, with time and source
    assert "][lrsflows.cli][INFO] - eight_gaussians lrs (coupling): test log likelihood" in run_log
    assert f"results: {trained_run}/results.json" in run_log
    assert [Path(path).stat().st_size > 10_000 for path in record["pictures"]] == [True]
    for name in ("last.pt", "best.pt"):
        state = torch.load(trained_run / "checkpoints" / name, weights_only=True)
        assert state["config"]["model"]["family"] == "lrs"
    assert torch.load(trained_run / "checkpoints" / "last.pt", weights_only=True)["step"] == 60


def test_tensorboard_events_hold_the_shared_tags_and_pictures(trained_run):
    events = EventAccumulator(str(trained_run / "tensorboard"), size_guidance={"scalars": 0, "images": 0}).Reload()
    tags = events.Tags()
    for tag in ("train/loss", "val/log_prob", "lr", "grad_norm", "steps_per_sec"):
        assert tag in tags["scalars"], tag
    assert [event.step for event in events.Scalars("val/log_prob")] == [20, 40, 60]
    assert [event.step for event in events.Scalars("train/loss")] == [10, 20, 30, 40, 50, 60]
    # After s updates the next step's rate is the original's closed form lr0·(1 + cos(πs/T))/2: not shifted.
    original = [5e-3 * (1 + math.cos(math.pi * event.step / 60)) / 2 for event in events.Scalars("lr")]
    assert [event.value for event in events.Scalars("lr")] == pytest.approx(original, rel=1e-6, abs=1e-12)
    assert events.Scalars("lr")[-1].value == pytest.approx(0.0, abs=1e-12)  # cosine annealing to 0
    assert "density" in tags["images"]
    assert "hparam/test_log_likelihood" in tags["scalars"]
    # One sign per split: train/log_prob is −train/loss (nats), on the chart val/log_prob is on.
    train = {event.step: event.value for event in events.Scalars("train/log_prob")}
    assert train == pytest.approx({event.step: -event.value for event in events.Scalars("train/loss")})


def test_metrics_csv_holds_every_logged_scalar(trained_run):
    """metrics.csv beside the events: the same (step, tag, value) rows, with TensorBoard's wall times."""
    events = EventAccumulator(str(trained_run / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    rows = pd.read_csv(trained_run / "metrics.csv")
    assert list(rows.columns) == ["step", "wall_time", "tag", "value"]
    assert set(rows["tag"]) == set(events.Tags()["scalars"])
    for tag, logged in rows.groupby("tag"):
        scalars = events.Scalars(tag)
        assert logged["step"].tolist() == [event.step for event in scalars], tag
        assert logged["value"].tolist() == pytest.approx([event.value for event in scalars], rel=1e-6), tag
        assert logged["wall_time"].tolist() == pytest.approx([event.wall_time for event in scalars], abs=1e-3)


def test_eval_and_sample_tasks_use_the_checkpoint(trained_run, tmp_path):
    best = trained_run / "checkpoints" / "best.pt"
    evaluated = json.loads(
        (run_dir_of(lrsflows("task=eval", f"ckpt={best}", cwd=tmp_path)) / "results.json").read_text()
    )
    original = json.loads((trained_run / "results.json").read_text())
    assert evaluated["value"] == pytest.approx(original["value"], abs=1e-9)
    assert evaluated["kl_gap"] == pytest.approx(original["kl_gap"], abs=1e-9)
    completed = lrsflows("task=sample", f"ckpt={best}", "n=300", cwd=tmp_path)
    samples = np.load(completed.stdout.strip().splitlines()[-1].removeprefix("samples: "))
    assert samples.shape == (300, 2) and np.isfinite(samples).all()


def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path):
    settings = [
        *TINY_2D,
        "dataset=crescent",
        "trainer.max_steps=600",
        "trainer.val_every=50",
        "trainer.checkpoint_every=25",
    ]
    (tmp_path / "whole").mkdir()
    (tmp_path / "interrupted").mkdir()
    whole_dir = tmp_path / "whole" / run_dir_of(lrsflows(*settings, cwd=tmp_path / "whole"))

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(
        [sys.executable, "-m", "lrsflows", *settings],
        cwd=interrupted,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = interrupted / whole_dir.relative_to(tmp_path / "whole") / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = torch.load(last, weights_only=True)["step"]
    assert 0 < killed_at < 600, "the run was not interrupted mid-way"
    assert not (last.parents[1] / "results.json").exists()
    assert collect(interrupted).incomplete[["run_dir", "status"]].values.tolist() == [
        [str(last.parents[1]), "unfinished"]
    ]

    refused = lrsflows(*settings, cwd=interrupted, check=False)
    assert refused.returncode == 1 and "trainer.resume=true" in refused.stderr
    resumed_dir = interrupted / run_dir_of(lrsflows(*settings, "trainer.resume=true", cwd=interrupted))

    final_whole = torch.load(whole_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
    final_resumed = torch.load(resumed_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
    for name, tensor in final_whole.items():
        assert torch.equal(tensor, final_resumed[name]), name
    whole_record = json.loads((whole_dir / "results.json").read_text())
    resumed_record = json.loads((resumed_dir / "results.json").read_text())
    for key in ("value", "error", "kl_gap", "best_step", "best_val"):
        assert whole_record[key] == resumed_record[key], key
    # metrics.csv lost the rows the killed run logged after its last checkpoint: the same rows as the whole run's.
    whole_rows, resumed_rows = (
        pd.read_csv(folder / "metrics.csv").query("tag != 'steps_per_sec'").drop(columns="wall_time")
        for folder in (whole_dir, resumed_dir)
    )
    pd.testing.assert_frame_equal(whole_rows, resumed_rows)


def test_a_parallel_multirun_gives_each_job_its_share_of_the_cores(tmp_path):
    """hydra/launcher=parallel (joblib, two jobs at a time): each job's intra-op threads are the cores / 2, and a
    single run gets all of them (trainer.threads=null); an explicit trainer.threads or OMP_NUM_THREADS wins."""
    common = [*TINY_2D, "dataset=gaussian", "trainer.max_steps=10", "trainer.val_every=10"]
    unset = {"OMP_NUM_THREADS": ""}  # the tests' one thread would otherwise be the user's choice
    lrsflows(
        "-m", "hydra/launcher=parallel", *common, "model=lrs,rq_nsf", "hydra.sweep.dir=sweep", cwd=tmp_path, env=unset
    )
    single = run_dir_of(lrsflows(*common, "model=q_nsf", cwd=tmp_path, env=unset))
    pinned = run_dir_of(lrsflows(*common, "model=affine", "trainer.threads=1", cwd=tmp_path, env=unset))
    environment = run_dir_of(lrsflows(*common, "model=lrs", cwd=tmp_path))  # OMP_NUM_THREADS=1
    cores = len(os.sched_getaffinity(0))

    def threads(run_dir: Path) -> int:
        return torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)["config"]["trainer"]["threads"]

    swept = sorted((tmp_path / "sweep").rglob("best.pt"))
    assert len(swept) == 2 and {threads(path.parents[1]) for path in swept} == {max(1, cores // 2)}
    assert threads(tmp_path / single) == cores and threads(tmp_path / pinned) == 1
    assert threads(tmp_path / environment) == 1


def test_a_multirun_sweep_makes_one_dir_per_job_and_a_table(tmp_path):
    lrsflows(
        "-m",
        *TINY_2D,
        "dataset=gaussian",
        "model=lrs,rq_nsf",
        "seed=0,1",
        "trainer.max_steps=20",
        "trainer.val_every=10",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    results = sorted((tmp_path / "sweep").rglob("results.json"))
    assert len(results) == 4
    assert {json.loads(path.read_text())["model"] for path in results} == {"lrs", "rq_nsf"}
    table = subprocess.run(
        [str(Path(sys.executable).with_name("lrsflows-tables")), str(tmp_path / "sweep")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "LRS (C)" in table.stdout and "RQ-NSF (C)" in table.stdout
    assert (tmp_path / "sweep" / "tables" / "toy2d.csv").is_file()


def generated_miniboone(root: Path) -> dict:
    """A data root under `root` holding only a generated miniboone/data.npy of the real shape; returns the
    environment that points the CLI at it."""
    (root / "data" / "miniboone").mkdir(parents=True)
    np.save(root / "data" / "miniboone" / "data.npy", np.random.default_rng(0).standard_normal((36_488, 43)))
    return {"LRSFLOWS_DATA_DIR": str(root / "data")}


def test_paper_miniboone_preset_runs_on_a_data_root_with_only_data_npy(tmp_path):
    """The acceptance command, on a generated miniboone/data.npy of the real shape."""
    data_root = generated_miniboone(tmp_path)
    completed = lrsflows(
        "experiment=paper/miniboone",
        "model=lrs",
        "trainer.max_steps=200",
        "trainer.progress_bar=false",
        "trainer.compile=false",  # 200 steps do not pay back the preset's compilation
        cwd=tmp_path,
        env=data_root,
    )
    record = json.loads((tmp_path / run_dir_of(completed) / "results.json").read_text())
    assert record["dataset"] == "miniboone" and record["num_test"] == 3_648 and record["steps"] == 200
    assert (
        record["num_parameters"] == 158_782
    )  # docs/architectures.md §Tabular and 2-D flows architecture with the NSF MINIBOONE settings
    assert record["kl_gap"] is None


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model=lsr", ["model/lsr", "lrs", "rq_nsf", "q_nsf", "affine"]),
        ("trainer.lr=abc", ["trainer.lr", "abc"]),
        ("model.arch=foo", ["coupling", "autoregressive"]),
        ("dataset=powr", ["power", "miniboone"]),
    ],
)
def test_a_wrong_config_value_fails_before_any_work_naming_the_choices(override, expected, tmp_path):
    completed = lrsflows(override, cwd=tmp_path, check=False)
    assert completed.returncode != 0
    for text in expected:
        assert text in completed.stderr, (text, completed.stderr)
    assert not (tmp_path / "outputs").exists()


def test_missing_data_names_the_expected_path_and_make_data(tmp_path):
    completed = lrsflows(
        "dataset=power",
        "trainer.progress_bar=false",
        cwd=tmp_path,
        check=False,
        env={"LRSFLOWS_DATA_DIR": str(tmp_path / "nowhere")},
    )
    assert completed.returncode == 1
    message = completed.stderr.strip().splitlines()
    assert len(message) == 1 and "Traceback" not in completed.stderr
    assert str(tmp_path / "nowhere" / "power" / "data.npy") in message[0] and "make data" in message[0]
    assert not list((tmp_path / "outputs").rglob("results.json"))


def test_a_diverging_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    completed = lrsflows(
        *TINY_2D,
        "dataset=gaussian",
        "trainer.lr=1e30",
        "trainer.grad_clip=null",
        "trainer.max_steps=100",
        "trainer.checkpoint_every=1",
        "trainer.val_every=1000",
        cwd=tmp_path,
        check=False,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "training loss became" in completed.stderr and "Traceback" not in completed.stderr
    last = next((tmp_path / "outputs").rglob("last.pt"))
    state = torch.load(last, weights_only=True)
    assert all(torch.isfinite(tensor).all() for tensor in state["model"].values() if tensor.is_floating_point())
    assert not list((tmp_path / "outputs").rglob("results.json"))
    failure = json.loads((last.parents[1] / "failure.json").read_text())
    assert "training loss became" in failure["error"]
    incomplete = collect(tmp_path / "outputs").incomplete
    assert incomplete[["run_dir", "status"]].values.tolist() == [[str(last.parents[1]), "failed"]]


def test_an_unwritable_output_dir_fails_with_one_clear_sentence(tmp_path):
    if os.geteuid() == 0:  # root writes through folder permissions; sysfs refuses new folders even to root
        unwritable = Path("/sys/lrsflows-test")
    else:
        unwritable = tmp_path / "locked"
        unwritable.mkdir(mode=0o555)
    completed = lrsflows(*TINY_2D, f"paths.output_dir={unwritable}/out", cwd=tmp_path, check=False)
    assert completed.returncode == 1
    assert str(unwritable) in completed.stderr and "paths.output_dir" in completed.stderr
    assert "Traceback" not in completed.stderr and len(completed.stderr.strip().splitlines()) == 1


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """MNIST's IDX format: big-endian magic 0x00000803, count, rows, cols, then uint8 pixels (gzip)."""
    header = np.array([0x803, *images.shape], dtype=">u4").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        handle.write(header + images.astype(np.uint8).tobytes())


def test_a_short_image_run_writes_bits_per_dim_sample_grids_and_tensorboard_pictures(tmp_path):
    rng = np.random.default_rng(0)
    strokes = (rng.random((1, 28, 28)) < 0.2) * 255  # a shared pattern plus noise: learnable in a few steps
    for name, count in (("train", 300), ("t10k", 100)):
        images = np.where(rng.random((count, 28, 28)) < 0.9, strokes, rng.integers(0, 256, (count, 28, 28)))
        write_idx_images(tmp_path / "data" / "mnist" / "MNIST" / "raw" / f"{name}-images-idx3-ubyte.gz", images)
    completed = lrsflows(
        "experiment=smoke/images",
        "model.hidden_channels=4",
        "trainer.batch_size=16",
        "trainer.max_steps=6",
        "trainer.val_every=3",
        "trainer.pictures_every=3",
        "trainer.eval_batch_size=50",
        "dataset.valid_frac=0.1",
        "dataset.num_workers=0",
        "trainer.progress_bar=false",
        cwd=tmp_path,
        env={"LRSFLOWS_DATA_DIR": str(tmp_path / "data")},
    )
    run = tmp_path / run_dir_of(completed)
    record = json.loads((run / "results.json").read_text())
    assert record["dataset"] == "mnist" and record["metric"] == "test_bits_per_dim" and record["unit"] == "bits/dim"
    assert record["num_test"] == 100 and 0 < record["value"] < 20  # six steps: a number, not yet a good one
    assert record["error_original"] == pytest.approx(record["error"] / 10)  # 2 std / N against 2 std / sqrt(N)
    assert len(np.load(run / "val_indices.npy")) == 30
    grids = sorted(path.name for path in (run / "pictures").glob("samples_temperature_*_step0000006.png"))
    assert grids == [f"samples_temperature_{t}_step0000006.png" for t in (0.5, 0.75, 1.0)]
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    assert {"samples/temperature_0.5", "samples/temperature_1.0", "reconstruction"} <= set(events.Tags()["images"])
    assert "val/bits_per_dim" in events.Tags()["scalars"]
    assert events.Scalars("val/reconstruction_error")[-1].value < 1e-2


def test_a_checkpoint_from_before_the_family_rename_still_scores_as_trained(tmp_path):
    """Checkpoints written when family 'quadratic' meant the C1 spline (and had no unconditional_init) load as
    quadratic_c1, so an old Q-NSF checkpoint is never silently evaluated as NSF's different function."""
    trained = run_dir_of(
        lrsflows(
            *TINY_2D,
            "dataset=gaussian",
            "model=q_nsf",
            "model.family=quadratic_c1",
            "trainer.max_steps=20",
            "trainer.val_every=10",
            cwd=tmp_path,
        )
    )
    state = torch.load(tmp_path / trained / "checkpoints" / "best.pt", weights_only=True)
    del state["config"]["model"]["unconditional_init"]
    state["config"]["model"]["family"] = "quadratic"
    torch.save(state, tmp_path / "old.pt")
    evaluated = json.loads(
        (run_dir_of(lrsflows("task=eval", "ckpt=old.pt", cwd=tmp_path)) / "results.json").read_text()
    )
    original = json.loads((tmp_path / trained / "results.json").read_text())
    assert evaluated["value"] == pytest.approx(original["value"], abs=1e-9)
