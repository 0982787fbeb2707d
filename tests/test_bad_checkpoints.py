"""Checkpoints that load but do not fit (another model's, edited, incomplete, not a checkpoint at all) are refused
with one sentence that names the file and what differs, as a user meets them: real runs, real subprocesses."""

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from test_cli import lrsflows, run_dir_of

TINY = [
    "experiment=toy2d",
    "dataset=checkerboard",
    "dataset.num_train=2000",
    "dataset.num_val=500",
    "dataset.num_test=1000",
    "model.hidden_features=16",
    "model.num_flow_steps=2",
    "trainer.batch_size=64",
    "trainer.max_steps=20",
    "trainer.val_every=10",
    "trainer.progress_bar=false",
]
OTHER_MODEL = ["model=rq_nsf", "model.hidden_features=24"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The run the checks target (LRS, hidden 16) and another model's (RQ-NSF, hidden 24) to take checkpoints from;
    "work" is the folder they were started in."""
    work = tmp_path_factory.mktemp("runs")
    made = {"lrs": run_dir_of(lrsflows(*TINY, cwd=work)), "rq": run_dir_of(lrsflows(*TINY, *OTHER_MODEL, cwd=work))}
    return {"work": work, **{name: work / folder for name, folder in made.items()}}


def checkpoint_of(runs: dict, run: str, name: str) -> dict:
    return torch.load(runs[run] / "checkpoints" / name, weights_only=True)


def edited(run: str, change: Callable[[dict, dict], object], name: str = "best.pt") -> Callable[[dict, Path], None]:
    """A maker of a bad checkpoint: `run`'s checkpoint `name` after change(state, runs), or what that returns."""

    def make(runs: dict, path: Path) -> None:
        state = checkpoint_of(runs, run, name)
        result = change(state, runs)
        torch.save(state if result is None else result, path)

    return make


def settings(section: str, **values) -> Callable[[dict, dict], None]:
    return lambda state, runs: state["config"][section].update(values)


def without(key: str) -> Callable[[dict, dict], dict]:
    return lambda state, runs: {name: value for name, value in state.items() if name != key}


def settings_of(run: str) -> Callable[[dict, dict], None]:
    return lambda state, runs: state.update(config=checkpoint_of(runs, run, "last.pt")["config"])


def truncated(runs: dict, path: Path) -> None:
    whole = (runs["lrs"] / "checkpoints" / "last.pt").read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def refusal(completed) -> str:
    """The one error sentence of a refused command: a failing exit status, one `error:` line, no traceback."""
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert completed.returncode != 0, completed.stdout
    assert len(errors) == 1 and "Traceback" not in completed.stderr, completed.stderr
    assert errors[0].endswith(".")
    return errors[0]


# name: (task, maker of the checkpoint, what the sentence says besides the file)
FOR_EVAL = {
    "another model's weights under edited sizes": (
        "eval",
        edited("rq", settings("model", hidden_features=16)),
        r"tensor \S+ has shape \(24, \d+\) in checkpoint \S+ but \(16, \d+\) in the rq_nsf model",
    ),
    "another family's weights under edited names": (
        "sample",
        edited("rq", settings("model", name="lrs", family="lrs")),
        r"tensor \S+ has shape \(\d+, 24\) in checkpoint \S+ but \(\d+, 24\) in the lrs model \(family lrs",
    ),
    "no config": ("eval", edited("lrs", without("config")), "has no 'config' entry"),
    "no model state": ("sample", edited("lrs", without("model")), "has no 'model' entry"),
    "a plain tensor": ("eval", edited("lrs", lambda state, runs: torch.zeros(3)), "holds a Tensor, not the dict"),
    "an unknown arch": (
        "sample",
        edited("lrs", settings("model", arch="foo")),
        r"config\.model\.arch='foo' is not one of the choices: coupling, autoregressive",
    ),
    "an unknown family": (
        "eval",
        edited("lrs", settings("model", family="bogus")),
        r"config\.model\.family='bogus' is not one of the choices: lrs, rq",
    ),
    "a text file": ("eval", lambda runs, path: path.write_text("not a checkpoint\n"), "cannot be read"),
    "an empty file": ("eval", lambda runs, path: path.write_bytes(b""), "cannot be read"),
    "a truncated zip": ("eval", truncated, "cannot be read"),
}

# name: (maker of checkpoints/last.pt, what the sentence says besides the file)
FOR_RESUME = {
    "another family's": (
        edited("rq", lambda state, runs: None, "last.pt"),
        r"trained with model\.name=rq_nsf, this run has model\.name=lrs; resume it with the settings it was "
        r"trained with \(model=rq_nsf\), or start a new run",
    ),
    "another size's": (
        edited("lrs", settings("model", hidden_features=24), "last.pt"),
        r"trained with model\.hidden_features=24, this run has model\.hidden_features=16",
    ),
    "another dataset's": (
        edited("lrs", settings("dataset", name="crescent"), "last.pt"),
        r"trained with dataset\.name=crescent, this run has dataset\.name=checkerboard; .*\(dataset=crescent\)",
    ),
    "another model's weights under this run's settings": (
        edited("rq", settings_of("lrs"), "last.pt"),
        r"tensor \S+ has shape \(24, \d+\) in checkpoint \S+ but \(16, \d+\) in this run's lrs model",
    ),
    "a truncated": (truncated, "cannot be read"),
}


@pytest.mark.parametrize("case", FOR_EVAL)
def test_eval_and_sample_refuse_a_checkpoint_that_does_not_fit(case, runs, tmp_path):
    task, make, expected = FOR_EVAL[case]
    path = tmp_path / "bad.pt"
    make(runs, path)
    sentence = refusal(lrsflows(f"task={task}", f"ckpt={path}", "n=10", cwd=tmp_path, check=False))
    assert f"checkpoint {path} " in sentence and re.search(expected, sentence), sentence
    assert sentence.endswith("pass ckpt=<run dir>/checkpoints/best.pt of a run trained by this version of lrsflows.")


def written(run_dir: Path, folders=("checkpoints", "tensorboard", ".hydra")) -> dict[str, tuple[bytes, int]]:
    """Every file of the run dir with its modification time (only under `folders`, and any other file at the top)."""
    files = [path for folder in folders for path in (run_dir / folder).rglob("*") if path.is_file()]
    files += [path for path in run_dir.iterdir() if path.is_file()]
    return {str(path.relative_to(run_dir)): (path.read_bytes(), path.stat().st_mtime_ns) for path in files}


# Found only once the model is built (the settings match): the run's config files are written by then and the
# refusal is recorded as a failure; training's own files stay untouched.
FOUND_AFTER_START = {"another model's weights under this run's settings"}


@pytest.mark.parametrize("case", FOR_RESUME)
def test_resuming_refuses_another_runs_last_checkpoint_and_writes_nothing(case, runs, tmp_path):
    make, expected = FOR_RESUME[case]
    run_dir = tmp_path / runs["lrs"].relative_to(runs["work"])  # the same command from tmp_path finds this dir
    shutil.copytree(runs["lrs"], run_dir)
    (run_dir / "results.json").unlink()
    last = run_dir / "checkpoints" / "last.pt"
    make(runs, last)
    folders = ("checkpoints", "tensorboard") if case in FOUND_AFTER_START else ("checkpoints", "tensorboard", ".hydra")
    before = written(run_dir, folders)
    sentence = refusal(lrsflows(*TINY, "trainer.resume=true", cwd=tmp_path, check=False))
    assert str(last.relative_to(tmp_path)) in sentence and re.search(expected, sentence), sentence
    assert sentence.endswith(f"start a new run instead (remove {run_dir} or choose another paths.output_dir).")
    after = written(run_dir, folders)
    if case in FOUND_AFTER_START:
        assert "failure.json" in after.keys() - before.keys()
        after.pop("failure.json")
        # run.log gains what the refused command said at its start (settings, model); its earlier lines stay.
        assert after.pop("run.log")[0].startswith(before.pop("run.log")[0])
    assert after == before and not (run_dir / "results.json").exists()
