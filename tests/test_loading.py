"""A trained flow in one's own code: lrsflows.load_flow and task=sample from a checkpoint alone, no data on disk."""

import doctest
import math
import shutil

import numpy as np
import pytest
import torch
from test_cli import TINY_2D, generated_miniboone, run_dir_of
from test_cli import lrsflows as cli

import lrsflows
from lrsflows import loading
from lrsflows.data.splits import load_splits
from lrsflows.errors import RunError

TINY_VECTORS = ["model.num_flow_steps=2", "model.hidden_features=16", "model.num_blocks=1", "model.num_bins=4"]


@pytest.fixture(scope="module")
def gaussian_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("gaussian")
    completed = cli(*TINY_2D, "dataset=gaussian", "trainer.max_steps=40", "trainer.val_every=20", cwd=work)
    return work / run_dir_of(completed)


@pytest.fixture(scope="module")
def miniboone_run(tmp_path_factory):
    """A tabular run on a generated miniboone/data.npy of the real shape, the data removed after training."""
    work = tmp_path_factory.mktemp("miniboone")
    completed = cli(
        "dataset=miniboone",
        *TINY_VECTORS,
        "trainer.max_steps=10",
        "trainer.val_every=10",
        "trainer.batch_size=64",
        "trainer.progress_bar=false",
        cwd=work,
        env=generated_miniboone(work),
    )
    shutil.rmtree(work / "data")
    return work, work / run_dir_of(completed)


def test_load_flow_rebuilds_the_trained_flow_from_the_checkpoint_alone(gaussian_run):
    flow = lrsflows.load_flow(gaussian_run / "checkpoints" / "best.pt")
    record = flow.record
    assert not flow.training and record.dataset == "gaussian" and record.data_kind == "toy2d"
    assert (record.model, record.family, record.arch, record.shape) == ("lrs", "lrs", "coupling", (2,))
    assert record.config["model"]["num_bins"] == 4 and record.step in (20, 40)
    # The weights are the trained ones: the validation split, drawn again from its seed, scores what training saw.
    splits = load_splits("gaussian", "toy2d", "unused", 4096, 1024, 2048, 0)
    with torch.no_grad():
        assert flow.log_prob(splits.val).mean().item() == pytest.approx(record.val_log_prob, abs=1e-5)
    samples = flow.sample(5)
    assert samples.shape == (5, 2) and torch.isfinite(samples).all()


def test_load_flow_docstring_example_runs(gaussian_run):
    """The example in load_flow's docstring, executed with `path` a real best.pt."""
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(loading.load_flow, globs={"path": gaussian_run / "checkpoints" / "best.pt"}):
        runner.run(test)
    assert runner.summarize(verbose=False) == (0, 1 + 2)


def test_load_flow_and_sample_need_no_data_on_disk(miniboone_run):
    work, run_dir = miniboone_run
    flow = lrsflows.load_flow(run_dir / "checkpoints" / "last.pt")
    assert flow.record.shape == (43,) and flow.sample(3).shape == (3, 43)
    completed = cli(
        "task=sample",
        f"ckpt={run_dir / 'checkpoints' / 'best.pt'}",
        "n=7",
        cwd=work,
        env={"LRSFLOWS_DATA_DIR": str(work / "nowhere")},
    )
    samples = np.load(next((work / "outputs" / "sample").rglob("samples.npy")))
    assert samples.shape == (7, 43) and np.isfinite(samples).all(), completed.stdout


def test_a_checkpoint_without_a_data_shape_is_one_sentence_for_load_flow_and_still_samples(gaussian_run, tmp_path):
    """Checkpoints of lrsflows before data shapes were recorded: load_flow says what is missing; task=sample falls
    back to the dataset (2-D data is generated, so it is always there)."""
    state = torch.load(gaussian_run / "checkpoints" / "best.pt", weights_only=True)
    del state["data"]
    old = tmp_path / "run" / "checkpoints" / "best.pt"
    old.parent.mkdir(parents=True)
    torch.save(state, old)
    with pytest.raises(RunError, match=r"was written before checkpoints recorded their data's shape.*task=sample"):
        lrsflows.load_flow(old)
    completed = cli("task=sample", f"ckpt={old}", "n=4", cwd=tmp_path)
    samples = np.load(next((tmp_path / "outputs" / "sample").rglob("samples.npy")))
    assert samples.shape == (4, 2) and math.isfinite(float(samples.sum())), completed.stdout


def test_load_flow_of_a_missing_file_is_one_sentence(tmp_path):
    with pytest.raises(RunError, match=r"checkpoint \S+best.pt does not exist; pass"):
        lrsflows.load_flow(tmp_path / "best.pt")
