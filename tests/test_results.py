"""Result tables: collection of results.json files, seed averages, σ distances to the paper, and the three formats."""

import json
import logging
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lrsflows.results import aggregate, build_tables, collect, paper_frame, render_markdown, write_tables
from lrsflows.results.paper import LRS_PAPER, NSF_PAPER

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_tables.py"
LOG_LIKELIHOOD = {"metric": "test_log_likelihood", "unit": "nats", "higher_is_better": True}
BITS_PER_DIM = {"metric": "test_bits_per_dim", "unit": "bits/dim", "higher_is_better": False}


def write_run(root: Path, name: str, content) -> None:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    text = content if isinstance(content, str) else json.dumps(content)
    (run_dir / "results.json").write_text(text)


def run(dataset, model, arch, seed, value, error, **extra) -> dict:
    """A results.json as the trainer writes it; `extra` adds or overrides keys."""
    base = {"dataset": dataset, "model": model, "arch": arch, "seed": seed, "value": value, "error": error}
    return {**LOG_LIKELIHOOD, **base, "true_log_prob": None, "true_log_prob_error": None, "kl_gap": None,
            "kl_gap_error": None, "num_test": 3648, "steps": 200, "git_revision": "abc", **extra}  # fmt: skip


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    root = tmp_path / "outputs"
    for seed, (value, error) in enumerate([(-9.50, 0.46), (-9.70, 0.47), (-9.60, 0.48)]):
        write_run(root, f"miniboone/lrs/{seed}", run("miniboone", "lrs", "coupling", seed, value, error))
    write_run(root, "miniboone/rq_nsf_ar/0", run("miniboone", "rq_nsf", "autoregressive", 0, -9.30, 0.50))
    # Written before the 2-D and image keys existed: only what the first trainer wrote.
    write_run(root, "gas/lrs/0", {"dataset": "gas", "model": "lrs", "arch": "coupling", "metric": "test_log_likelihood",
                                  "value": 13.00, "error": 0.02})  # fmt: skip
    for seed, (value, kl_gap) in enumerate([(-2.90, 0.04), (-2.96, 0.10)]):
        write_run(root, f"eight_gaussians/{seed}", run("eight_gaussians", "lrs", "coupling", seed, value, 0.02,
                  true_log_prob=-2.85, true_log_prob_error=0.02, kl_gap=kl_gap, kl_gap_error=0.01))  # fmt: skip
    write_run(root, "checkerboard/0", run("checkerboard", "rq_nsf", "coupling", 0, -3.60, 0.01))
    write_run(root, "cifar10/0", run("cifar10", "lrs", "coupling", 0, 3.40, 0.004, error_original=4e-5, **BITS_PER_DIM))
    write_run(root, "crashed/0", '{"dataset": "gas", "value": ')
    write_run(root, "partial/0", {"dataset": "gas", "model": "lrs", "value": 1.0})
    return root


@pytest.fixture
def summary(runs_dir) -> pd.DataFrame:
    return aggregate(collect(runs_dir))


def ours(frame: pd.DataFrame, **keys) -> pd.Series:
    """The one row of `frame` matching `keys`."""
    matches = frame[(frame[list(keys)] == pd.Series(keys)).all(axis=1)]
    assert len(matches) == 1, matches
    return matches.iloc[0]


def tables_by_name(summary) -> dict:
    return {table.name: table for table in build_tables(summary)}


def test_collect_reads_every_valid_run_and_skips_broken_files_with_one_warning_each(runs_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="lrsflows.results.collect"):
        runs = collect(runs_dir)
    assert len(runs) == 9
    assert set(runs["run_dir"]) >= {str(runs_dir / "gas/lrs/0"), str(runs_dir / "cifar10/0")}
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2 and all("\n" not in warning for warning in warnings)
    assert any(str(runs_dir / "crashed/0/results.json") in w and "not valid JSON" in w for w in warnings)
    assert any(str(runs_dir / "partial/0/results.json") in w and "arch, metric" in w for w in warnings)
    old = ours(runs, dataset="gas")
    assert pd.isna(old["kl_gap"]) and pd.isna(old["error_original"]) and pd.isna(old["seed"])


def test_collect_of_missing_folder_says_which_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere is not a folder"):
        collect(tmp_path / "nowhere")


def test_aggregate_averages_values_and_error_bars_over_seeds(summary):
    assert len(summary) == 6
    miniboone = ours(summary, dataset="miniboone", model="lrs", arch="coupling")
    assert miniboone["value"] == pytest.approx(-9.60)
    assert miniboone["error"] == pytest.approx(0.47)
    assert miniboone["value_std"] == pytest.approx(0.10)  # sample std of -9.5, -9.7, -9.6
    assert miniboone["num_seeds"] == 3
    toy = ours(summary, dataset="eight_gaussians")
    assert (toy["value"], toy["kl_gap"], toy["kl_gap_error"]) == pytest.approx((-2.93, 0.07, 0.01))
    assert toy["kl_gap_std"] == pytest.approx(0.06 / 2**0.5)
    assert (toy["true_log_prob"], toy["true_log_prob_std"], toy["num_seeds"]) == pytest.approx((-2.85, 0.0, 2))
    assert pd.isna(ours(summary, dataset="checkerboard")["kl_gap"])
    assert ours(summary, dataset="cifar10")["error_original"] == pytest.approx(4e-5)


def test_paper_frame_holds_all_three_published_tables():
    paper = paper_frame()
    assert paper.groupby("source").size().to_dict() == {LRS_PAPER: 25 + 10, NSF_PAPER: 15}
    lrs = ours(paper, model_label="LRS", arch="coupling", dataset="MINIBOONE")
    assert (lrs["value"], lrs["error"]) == (-9.65, 0.48)
    rq_autoregressive = ours(paper, model_label="RQ-NSF", arch="autoregressive", dataset="HEPMASS")
    assert (rq_autoregressive["value"], rq_autoregressive["source"]) == (-14.01, NSF_PAPER)
    ffjord = ours(paper, model_label="FFJORD", dataset="BSDS300")
    assert ffjord["value"] == 157.40 and pd.isna(ffjord["error"]) and pd.isna(ffjord["arch"])
    assert paper.query("dataset == 'ImageNet 64x64'")["error"].isna().all()
    assert ours(paper, model_label="Residual Flows", dataset="CIFAR-10")["value"] == 3.28


def test_sigma_distance_is_ours_minus_paper_in_the_papers_error_bars(summary):
    tabular = tables_by_name(summary)["tabular"]
    sigma = tabular.tidy.query("source == 'ours'").set_index(["row", "dataset"])["sigma_diff"]
    assert sigma["LRS (C)", "MINIBOONE"] == pytest.approx((-9.60 - -9.65) / 0.48)
    assert sigma["RQ-NSF (A)", "MINIBOONE"] == pytest.approx((-9.30 - -9.22) / 0.48)  # the NSF (A) row
    assert sigma["LRS (C)", "GAS"] == pytest.approx((13.00 - 12.99) / 0.02)
    cells = tabular.display.set_index(["Model", "Source"])
    assert cells.loc[("LRS (C)", "ours"), "MINIBOONE"] == "-9.60 ± 0.47 (+0.1σ, n=3)"
    assert cells.loc[("RQ-NSF (A)", "ours"), "MINIBOONE"] == "-9.30 ± 0.50 (-0.2σ)"
    assert cells.loc[("LRS (C)", "ours"), "GAS"] == "13.00 ± 0.02 (+0.5σ)"
    assert cells.loc[("RQ-NSF (A)", "ours"), "GAS"] == ""
    assert "σ is the paper's ±" in tabular.notes


def test_paper_rows_for_present_datasets_sit_above_ours(summary):
    tabular = tables_by_name(summary)["tabular"].display
    assert list(tabular.columns) == ["Model", "Source", "GAS", "MINIBOONE"]
    assert list(tabular["Source"]) == [LRS_PAPER] * 5 + [NSF_PAPER] * 3 + ["ours"] * 2
    assert list(tabular["Model"]) == ["FFJORD", "Glow", "Q-NSF (C)", "RQ-NSF (C)", "LRS (C)",
                                      "MAF", "Q-NSF (A)", "RQ-NSF (A)", "LRS (C)", "RQ-NSF (A)"]  # fmt: skip
    paper_cells = tabular.set_index(["Model", "Source"])
    assert paper_cells.loc[("LRS (C)", LRS_PAPER), "MINIBOONE"] == "-9.65 ± 0.48"
    assert paper_cells.loc[("FFJORD", LRS_PAPER), "GAS"] == "8.59"
    images = tables_by_name(summary)["images"].display
    assert list(images.columns) == ["Model", "Source", "CIFAR-10"]
    assert images.iloc[-1].tolist() == ["LRS (C)", "ours", "3.40 ± 0.004"]
    assert images.iloc[:-1]["CIFAR-10"].tolist() == ["3.49", "3.35", "3.28", "3.38", "3.38"]


def test_toy2d_table_in_markdown(summary):
    markdown = render_markdown(summary)
    assert [line[:4] for line in markdown.splitlines() if line.startswith("### ")] == ["### "] * 3
    assert "\n".join(
        [
            "| Dataset | Model | Test log-lik (nats) | True E log p (nats) | KL gap (nats) | Seeds |",
            "| --- | --- | --- | --- | --- | --- |",
            "| checkerboard | RQ-NSF (C) | -3.600 ± 0.010 |  |  | 1 |",
            "| eight_gaussians | LRS (C) | -2.930 ± 0.020 | -2.850 ± 0.020 | 0.070 ± 0.010 | 2 |",
        ]
    ) in markdown
    assert "KL gap = E_test[log p_true - log p_model]" in markdown


def test_write_tables_writes_balanced_escaped_latex_and_csv_that_round_trips(summary, tmp_path):
    written = write_tables(summary, tmp_path / "tables")
    assert sorted(path.name for path in written) == sorted(
        f"{name}.{suffix}" for name in ("tabular", "images", "toy2d") for suffix in ("md", "tex", "csv")
    )
    for table in build_tables(summary):
        latex = (tmp_path / "tables" / f"{table.name}.tex").read_text()
        for environment in ("table", "tabular"):
            assert latex.count(rf"\begin{{{environment}}}") == latex.count(rf"\end{{{environment}}}") == 1
        assert "±" not in latex and "σ" not in latex and not re.search(r"(?<!\\)[_%#]", latex)
        body = latex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
        assert len(body) == len(table.display)
        assert all(len(re.findall(r"(?<!\\)&", row)) == table.display.shape[1] - 1 for row in body)
        read_back, tidy = pd.read_csv(tmp_path / "tables" / f"{table.name}.csv"), table.tidy.reset_index(drop=True)
        assert list(read_back.columns) == list(tidy.columns) and read_back["row"].tolist() == tidy["row"].tolist()
        numbers = tidy.select_dtypes("number").columns
        assert {"value", "error", "num_seeds"} <= set(numbers)
        pd.testing.assert_frame_equal(read_back[numbers], tidy[numbers], check_dtype=False)
    toy_latex = (tmp_path / "tables" / "toy2d.tex").read_text()
    assert r"eight\_gaussians" in toy_latex and r"$\pm$" in toy_latex


def test_only_present_kinds_are_written(tmp_path):
    write_run(tmp_path / "runs", "0", run("rings", "q_nsf", "autoregressive", 0, -3.1, 0.02))
    written = write_tables(aggregate(collect(tmp_path / "runs")), tmp_path / "tables")
    assert sorted(path.name for path in written) == ["toy2d.csv", "toy2d.md", "toy2d.tex"]
    assert "| rings | Q-NSF (A) | -3.100 ± 0.020 |  |  | 1 |" in (tmp_path / "tables" / "toy2d.md").read_text()


def test_script_prints_the_tables_and_writes_the_files(runs_dir, tmp_path):
    out = tmp_path / "paper_tables"
    done = subprocess.run([sys.executable, str(SCRIPT), str(runs_dir), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| LRS (C) | ours | 13.00 ± 0.02 (+0.5σ) | -9.60 ± 0.47 (+0.1σ, n=3) |" in done.stdout
    assert f"wrote {out / 'toy2d.csv'}" in done.stdout
    assert len(list(out.iterdir())) == 9
    assert "crashed/0/results.json" in done.stderr and "Traceback" not in done.stderr


def test_script_on_a_folder_without_results_exits_1_with_one_sentence(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == done.stderr.strip().splitlines()[0]
    assert done.stderr.startswith(f"no readable results.json under {tmp_path}; train first")
    with pytest.raises(SystemExit, match="nowhere is not a folder"):
        runpy.run_path(str(SCRIPT))["main"]([str(tmp_path / "nowhere")])
