"""Adding a spline family is one module and one registration: a family registered by a module of the user's,
outside the package, is a choice of the CLI, trains through its whole code path and gets its own table label."""

import json
import subprocess
import sys
from dataclasses import replace

from test_cli import TINY_2D, environment, lrsflows, run_dir_of

from lrsflows import splines
from lrsflows.results import aggregate, collect, render_markdown

# What a newcomer's module holds: a Family and its registration (here RQ's maps under another name, so the
# result can be checked against RQ's own run of the same settings).
FAMILY_MODULE = """
from dataclasses import replace

from lrsflows import splines

splines.register(replace(splines.spline_family("rq"), name="rq_twin", label="RQ twin"))
"""
SETTINGS = [*TINY_2D, "dataset=gaussian", "trainer.max_steps=30", "trainer.val_every=15"]


def lrsflows_with_module(module_dir, *overrides, cwd):
    """The CLI's entry point, run after importing the user's module (as a plugin or a notebook would)."""
    code = "import sys, throwaway_family; from lrsflows.__main__ import run; sys.argv[0] = 'lrsflows'; run()"
    return subprocess.run(
        [sys.executable, "-c", code, *overrides],
        cwd=cwd,
        env=environment({"PYTHONPATH": str(module_dir)}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_registered_family_trains_through_the_cli_and_gets_its_label(tmp_path, monkeypatch):
    (tmp_path / "throwaway_family.py").write_text(FAMILY_MODULE)
    unknown = lrsflows(*SETTINGS, "model.family=rq_twin", cwd=tmp_path, check=False)
    assert unknown.returncode == 1 and "model.family='rq_twin' is not one of the choices: lrs, rq" in unknown.stderr

    twin = lrsflows_with_module(tmp_path, *SETTINGS, "model.family=rq_twin", cwd=tmp_path)
    assert twin.returncode == 0, twin.stderr
    rq = lrsflows(*SETTINGS, "model.family=rq", cwd=tmp_path)
    twin_record = json.loads((tmp_path / run_dir_of(twin) / "results.json").read_text())
    rq_record = json.loads((tmp_path / run_dir_of(rq) / "results.json").read_text())
    assert twin_record["family"] == "rq_twin" and rq_record["family"] == "rq"
    # The same maps, seed and settings: the same model size and, bit for bit, the same test score.
    assert twin_record["num_parameters"] == rq_record["num_parameters"]
    assert twin_record["value"] == rq_record["value"]

    monkeypatch.setitem(
        splines.FAMILIES, "rq_twin", replace(splines.spline_family("rq"), name="rq_twin", label="RQ twin")
    )
    table = render_markdown(aggregate(collect(tmp_path / "outputs").runs))
    assert "| RQ twin (C) |" in table and "| RQ-NSF (C) |" in table
