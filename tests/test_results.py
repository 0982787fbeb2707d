"""Result tables: what a result records, grouping by configuration, spread over seeds, σ distances to verified
published rows, runs without results, and three formats that agree."""

import json
import logging
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf
from test_cli import TINY_2D, lrsflows, run_dir_of

from lrsflows.cli import CONFIG_DIR
from lrsflows.results import aggregate, build_tables, collect, paper_frame, render_markdown, write_tables
from lrsflows.results.command import main as tables_main
from lrsflows.results.paper import LRS_PAPER, NSF_PAPER
from lrsflows.results.record import NOT_TRAINING, config_digest, flatten, training_config

TABLES = str(Path(sys.executable).with_name("lrsflows-tables"))  # the console script beside this Python
LOG_LIKELIHOOD = {"metric": "test_log_likelihood", "unit": "nats", "higher_is_better": True}
BITS_PER_DIM = {"metric": "test_bits_per_dim", "unit": "bits/dim", "higher_is_better": False}


def write_run(root: Path, name: str, content, hydra_task: str | None = None) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    if content is not None:
        text = content if isinstance(content, str) else json.dumps(content)
        (run_dir / "results.json").write_text(text)
    if hydra_task is not None:
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "config.yaml").write_text(f"task: {hydra_task}\nseed: 0\n")
    return run_dir


def family_of(model: str) -> str:
    """The spline family of a model preset, as conf/model/<model>.yaml sets it."""
    return OmegaConf.load(Path(CONFIG_DIR) / "model" / f"{model}.yaml").family


def config_of(dataset: str, model: str, arch: str, kind: str, **changes) -> dict:
    """A resolved training config as results.json records it; `changes` are dotted keys ("trainer.lr")."""
    config = {
        "task": "train",
        "seed": 0,
        "paths": {"data_dir": "data", "output_dir": "outputs"},
        "dataset": {"name": dataset, "kind": kind},
        "model": {"name": model, "family": family_of(model), "arch": arch, "num_bins": 8},
        "trainer": {"lr": 0.0005, "max_steps": 200, "device": "auto"},
    }
    for key, value in changes.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def run(dataset, model, arch, seed, value, error, kind="tabular", task="train", changes=None, **extra) -> dict:
    """A results.json as the trainer writes it; `changes` alters the training config, `extra` adds keys."""
    training = training_config(config_of(dataset, model, arch, kind, **(changes or {})))
    base = {
        "task": task,
        "data_kind": kind,
        "config": training,
        "config_digest": config_digest(training),
        "dataset": dataset,
        "model": model,
        "family": family_of(model),
        "arch": arch,
        "seed": seed,
        "value": value,
        "error": error,
    }
    return {
        **LOG_LIKELIHOOD,
        **base,
        "true_log_prob": None,
        "true_log_prob_error": None,
        "kl_gap": None,
        "kl_gap_error": None,
        "num_test": 3648,
        "steps": 200,
        "git_revision": "abc",
        **extra,
    }


def legacy_gas(value: float, **extra) -> dict:
    """An LRS (C) GAS results.json of the first trainer, before results recorded their task and configuration."""
    return {
        "dataset": "gas",
        "model": "lrs",
        "arch": "coupling",
        "metric": "test_log_likelihood",
        "value": value,
        "error": 0.02,
        **extra,
    }


MINIBOONE_LRS = [(-9.50, 0.46), (-9.70, 0.47), (-9.60, 0.48)]


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    root = tmp_path / "outputs"
    for seed, (value, error) in enumerate(MINIBOONE_LRS):
        write_run(root, f"miniboone/lrs/{seed}", run("miniboone", "lrs", "coupling", seed, value, error))
    write_run(
        root, "miniboone/lrs/lr", run("miniboone", "lrs", "coupling", 0, -9.90, 0.50, changes={"trainer.lr": 0.001})
    )
    write_run(root, "miniboone/lrs/eval", run("miniboone", "lrs", "coupling", 0, -9.50, 0.46, task="eval"))
    write_run(root, "miniboone/rq_nsf_ar/0", run("miniboone", "rq_nsf", "autoregressive", 0, -9.30, 0.50))
    # Written before results recorded their configuration: only what the first trainer wrote.
    write_run(root, "gas/lrs/0", legacy_gas(13.00, seed=0))
    write_run(root, "gas/lrs/1", legacy_gas(12.90, seed=1))
    write_run(root, "gas/lrs/old_eval", legacy_gas(13.00, checkpoint="gas/lrs/0/checkpoints/best.pt"))
    for seed, (value, kl_gap) in enumerate([(-2.90, 0.04), (-2.96, 0.10)]):
        write_run(
            root,
            f"eight_gaussians/{seed}",
            run(
                "eight_gaussians",
                "lrs",
                "coupling",
                seed,
                value,
                0.02,
                kind="toy2d",
                true_log_prob=-2.85,
                true_log_prob_error=0.02,
                kl_gap=kl_gap,
                kl_gap_error=0.01,
            ),
        )
    write_run(root, "checkerboard/0", run("checkerboard", "rq_nsf", "coupling", 0, -3.60, 0.01, kind="toy2d"))
    write_run(
        root,
        "cifar10/0",
        run("cifar10", "lrs", "coupling", 0, 3.40, 0.004, kind="image", error_original=4e-5, **BITS_PER_DIM),
    )
    write_run(root, "crashed/0", '{"dataset": "gas", "value": ')
    write_run(root, "partial/0", {"dataset": "gas", "model": "lrs", "value": 1.0})
    return root


@pytest.fixture
def collection(runs_dir):
    return collect(runs_dir)


@pytest.fixture
def summary(collection) -> pd.DataFrame:
    return aggregate(collection.runs)


def ours(frame: pd.DataFrame, **keys) -> pd.Series:
    """The one row of `frame` matching `keys`."""
    matches = frame[(frame[list(keys)] == pd.Series(keys)).all(axis=1)]
    assert len(matches) == 1, matches
    return matches.iloc[0]


def tables_by_name(summary, notes=()) -> dict:
    return {table.name: table for table in build_tables(summary, notes)}


def test_training_config_leaves_out_only_what_cannot_change_a_number():
    config = config_of("rings", "lrs", "coupling", "toy2d")
    training = flatten(training_config(config))
    assert "trainer.lr" in training and "model.num_bins" in training and "dataset.name" in training
    assert not any(key == left_out or key.startswith(f"{left_out}.") for key in training for left_out in NOT_TRAINING)
    assert "paths.data_dir" not in training and "seed" not in training and "trainer.device" not in training
    shuffled = json.loads(json.dumps(config_of("rings", "lrs", "coupling", "toy2d", **{"trainer.device": "cuda"})))
    shuffled["trainer"] = dict(reversed(list(shuffled["trainer"].items())))
    assert config_digest(training_config(shuffled)) == config_digest(training_config(config))
    changed = training_config(config_of("rings", "lrs", "coupling", "toy2d", **{"trainer.lr": 0.001}))
    assert config_digest(changed) != config_digest(training_config(config))


def test_collect_reads_training_runs_only_and_skips_broken_files_with_one_warning_each(runs_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="lrsflows.results.collect"):
        runs = collect(runs_dir).runs
    assert len(runs) == 11  # 4 LRS + 1 RQ MINIBOONE, 2 legacy GAS, 2 eight Gaussians, checkerboard, CIFAR-10
    assert not runs["run_dir"].str.contains("eval").any()
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2 and all("\n" not in warning for warning in warnings)
    assert any(str(runs_dir / "crashed/0/results.json") in w and "not valid JSON" in w for w in warnings)
    assert any(str(runs_dir / "partial/0/results.json") in w and "arch, metric" in w for w in warnings)
    old = runs[runs["dataset"] == "gas"]
    assert old["config_digest"].nunique() == 2 and (old["data_kind"] == "tabular").all()


def test_collect_of_missing_folder_says_which_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere is not a folder"):
        collect(tmp_path / "nowhere")


def test_collection_notes_say_what_was_left_out(collection):
    notes = " ".join(collection.notes)
    assert "2 eval/sample result(s) left out" in notes
    assert "2 results.json file(s) predate configuration records; each is its own row" in notes


def test_seeds_of_one_configuration_share_a_row_with_their_spread_as_the_error_bar(summary):
    miniboone = ours(summary, dataset="miniboone", model="lrs", arch="coupling", variant="trainer.lr=0.0005")
    values = [value for value, _ in MINIBOONE_LRS]
    assert miniboone["num_seeds"] == 3 and miniboone["seeds"] == "0;1;2"
    assert miniboone["value"] == pytest.approx(sum(values) / 3)
    assert miniboone["value_std"] == pytest.approx(pd.Series(values).std())
    assert miniboone["error"] == pytest.approx(2 * pd.Series(values).std() / math.sqrt(3))
    assert miniboone["error_basis"] == "seeds"
    assert miniboone["value_test_error"] == pytest.approx(0.47)  # the runs' own error bars, kept for the CSV
    assert [float(value) for value in miniboone["seed_values"].split(";")] == values
    toy = ours(summary, dataset="eight_gaussians")
    assert toy["kl_gap"] == pytest.approx(0.07) and toy["kl_gap_error"] == pytest.approx(2 * 0.06 / 2**0.5 / 2**0.5)
    assert toy["true_log_prob_error"] == pytest.approx(0.0)


def test_a_single_run_keeps_its_own_test_set_error_bar(summary):
    single = ours(summary, dataset="checkerboard")
    assert (single["num_seeds"], single["error"], single["error_basis"]) == (1, 0.01, "test set")
    assert pd.isna(single["value_seed_error"]) and pd.isna(single["kl_gap"])
    assert ours(summary, dataset="cifar10")["error_original"] == pytest.approx(4e-5)


def test_different_configurations_are_separate_rows_named_by_what_differs(summary):
    lrs = summary.query("dataset == 'miniboone' and model == 'lrs'")
    assert sorted(lrs["variant"]) == ["trainer.lr=0.0005", "trainer.lr=0.001"]
    assert set(lrs["differing"]) == {"trainer.lr: 0.0005 | 0.001"}
    assert sorted(lrs["num_seeds"]) == [1, 3]
    assert ours(summary, dataset="miniboone", model="rq_nsf")["variant"] == ""
    legacy = summary.query("dataset == 'gas'")
    assert len(legacy) == 2 and legacy["variant"].str.startswith("no config recorded").all()


def test_a_seed_trained_twice_with_one_configuration_counts_once(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "a", run("power", "lrs", "coupling", 0, 0.60, 0.01))
    write_run(root, "b", run("power", "lrs", "coupling", 0, 0.60, 0.01))
    collection = collect(root)
    assert len(collection.runs) == 1 and any("repeats seed 0" in note for note in collection.notes)


def test_runs_without_results_are_listed_as_unfinished_or_failed(tmp_path):
    root = tmp_path / "sweep"
    write_run(root, "finished", run("rings", "lrs", "coupling", 0, -3.0, 0.02, kind="toy2d"), hydra_task="train")
    write_run(root, "killed", None, hydra_task="train")
    failed = write_run(root, "diverged", None, hydra_task="train")
    (failed / "failure.json").write_text(json.dumps({"error": "the training loss became nan at step 7"}))
    write_run(
        root, "an_eval", run("rings", "lrs", "coupling", 0, -3.0, 0.02, kind="toy2d", task="eval"), hydra_task="eval"
    )
    write_run(root, "a_sample", None, hydra_task="sample")
    collection = collect(root)
    incomplete = collection.incomplete.set_index("run_dir")
    assert incomplete["status"].to_dict() == {str(root / "diverged"): "failed", str(root / "killed"): "unfinished"}
    assert incomplete.loc[str(root / "diverged"), "reason"] == "the training loss became nan at step 7"
    markdown = render_markdown(aggregate(collection.runs), collection)
    assert "### Runs without results (2)" in markdown
    assert f"- failed: {root / 'diverged'} (the training loss became nan at step 7)" in markdown
    assert f"- unfinished: {root / 'killed'}" in markdown
    written = write_tables(aggregate(collection.runs), tmp_path / "tables", collection)
    assert pd.read_csv(tmp_path / "tables" / "incomplete.csv")["status"].tolist() == ["failed", "unfinished"]
    assert tmp_path / "tables" / "incomplete.csv" in written


def test_paper_frame_holds_all_three_published_tables_and_marks_what_is_verified():
    paper = paper_frame()
    assert paper.groupby("source").size().to_dict() == {LRS_PAPER: 25 + 10, NSF_PAPER: 15}
    assert paper.groupby("source")["verified"].all().to_dict() == {LRS_PAPER: True, NSF_PAPER: False}
    lrs = ours(paper, model_label="LRS", arch="coupling", dataset="MINIBOONE")
    assert (lrs["value"], lrs["error"]) == (-9.65, 0.48)
    ffjord = ours(paper, model_label="FFJORD", dataset="BSDS300")
    assert ffjord["value"] == 157.40 and pd.isna(ffjord["error"]) and pd.isna(ffjord["arch"])
    assert paper.query("dataset == 'ImageNet 64x64'")["error"].isna().all()


def test_sigma_distance_only_against_verified_published_rows(summary):
    tabular = tables_by_name(summary)["tabular"]
    mine = tabular.tidy.query("source == 'ours'").set_index(["row", "variant", "dataset"])["sigma_diff"]
    mean = sum(value for value, _ in MINIBOONE_LRS) / 3
    assert mine["LRS (C)", "trainer.lr=0.0005", "MINIBOONE"] == pytest.approx((mean - -9.65) / 0.48)
    assert pd.isna(mine["RQ-NSF (A)", "", "MINIBOONE"])  # the NSF (A) row is unverified
    cells = tabular.display.set_index(["Model", "Source"])
    error = 2 * pd.Series([value for value, _ in MINIBOONE_LRS]).std() / math.sqrt(3)
    assert cells.loc[("LRS (C)", "ours: trainer.lr=0.0005"), "MINIBOONE"] == f"-9.60 ± {error:.2f} (n=3, +0.1σ)"
    assert cells.loc[("LRS (C)", "ours: trainer.lr=0.001"), "MINIBOONE"] == "-9.90 ± 0.50 (n=1, test-set ±, -0.5σ)"
    assert cells.loc[("RQ-NSF (A)", "ours"), "MINIBOONE"] == "-9.30 ± 0.50 (n=1, test-set ±)"
    assert "LRS (C) on MINIBOONE differs in trainer.lr: 0.0005 | 0.001." in tabular.notes
    assert "AISTATS 2020" in tabular.notes and "transcribed from memory" in tabular.notes
    assert ".md" not in tabular.notes  # sources are publications, not files outside the repository


def test_verified_rows_sit_above_ours_and_unverified_rows_below_only_beside_autoregressive_runs(summary):
    tabular = tables_by_name(summary)["tabular"].display
    assert list(tabular.columns) == ["Model", "Source", "GAS", "MINIBOONE"]
    assert list(tabular["Source"])[:5] == [LRS_PAPER] * 5 and list(tabular["Source"])[-3:] == [NSF_PAPER] * 3
    assert list(tabular["Model"])[-3:] == ["MAF", "Q-NSF (A)", "RQ-NSF (A)"]
    paper_cells = tabular.set_index(["Model", "Source"])
    assert paper_cells.loc[("LRS (C)", LRS_PAPER), "MINIBOONE"] == "-9.65 ± 0.48"
    assert paper_cells.loc[("FFJORD", LRS_PAPER), "GAS"] == "8.59"
    coupling_only = summary.query("arch == 'coupling'")
    assert NSF_PAPER not in set(tables_by_name(coupling_only)["tabular"].display["Source"])
    images = tables_by_name(summary)["images"].display
    assert list(images.columns) == ["Model", "Source", "CIFAR-10"]
    assert images.iloc[-1].tolist() == ["LRS (C)", "ours", "3.40 ± 0.004 (n=1, test-set ±)"]


def test_toy2d_table_in_markdown(summary):
    markdown = render_markdown(summary)
    assert len([line for line in markdown.splitlines() if line.startswith("### ")]) == 3
    spread = 2 * pd.Series([-2.90, -2.96]).std() / math.sqrt(2)
    assert (
        "\n".join(
            [
                "| Dataset | Model | Test log-lik (nats) | True E log p (nats) | KL gap (nats) | n | ± over |",
                "| --- | --- | --- | --- | --- | --- | --- |",
                "| checkerboard | RQ-NSF (C) | -3.600 ± 0.010 |  |  | 1 | test set |",
                f"| eight_gaussians | LRS (C) | -2.930 ± {spread:.3f} | -2.850 ± 0 | 0.070 ± 0.060 | 2 | seeds |",
            ]
        )
        in markdown
    )
    assert "KL gap = E_test[log p_true - log p_model]" in markdown


def markdown_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def latex_rows(latex: str) -> list[list[str]]:
    body = latex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    return [[cell.strip() for cell in re.split(r"(?<!\\)&", row.removesuffix(r"\\").strip())] for row in body]


def test_markdown_latex_and_csv_come_from_one_frame_and_agree(summary, tmp_path):
    written = write_tables(summary, tmp_path / "tables")
    assert sorted(path.name for path in written) == sorted(
        f"{name}.{suffix}" for name in ("tabular", "images", "toy2d") for suffix in ("md", "tex", "csv")
    )
    for table in build_tables(summary):
        markdown = (tmp_path / "tables" / f"{table.name}.md").read_text()
        latex = (tmp_path / "tables" / f"{table.name}.tex").read_text()
        csv = pd.read_csv(tmp_path / "tables" / f"{table.name}.csv", keep_default_na=False)
        for environment in ("table", "tabular"):
            assert latex.count(rf"\begin{{{environment}}}") == latex.count(rf"\end{{{environment}}}") == 1
        assert "±" not in latex and "σ" not in latex and not re.search(r"(?<!\\)[_%#]", latex)
        shown = markdown_rows(markdown)[1:]
        assert len(shown) == len(latex_rows(latex)) == len(table.display)
        escaped = [
            [cell.replace("±", r"$\pm$").replace("σ", r"$\sigma$").replace("_", r"\_") for cell in row] for row in shown
        ]
        assert escaped == latex_rows(latex)
        # Every cell the Markdown shows for our runs is the CSV's cell text, and its numbers are the CSV's numbers.
        mine = csv[csv["source"] == "ours"]
        assert len(mine) == (table.tidy["source"] == "ours").sum()
        shown_cells = {cell for row in shown for cell in row}
        for row in mine.itertuples():
            assert row.cell in shown_cells
            value, error = re.match(r"(-?[\d.]+) ± ([\d.e-]+)", row.cell).groups()
            decimals = len(value.split(".")[1])
            assert float(value) == pytest.approx(round(float(row.value), decimals))
            assert float(error) == pytest.approx(float(row.error), rel=0.05, abs=0.5 * 10**-decimals)
            assert len(str(row.run_dirs).split(";")) == int(row.num_seeds) == len(str(row.seed_values).split(";"))


def test_only_present_kinds_are_written(tmp_path):
    write_run(tmp_path / "runs", "0", run("rings", "q_nsf", "autoregressive", 0, -3.1, 0.02, kind="toy2d"))
    written = write_tables(aggregate(collect(tmp_path / "runs").runs), tmp_path / "tables")
    assert sorted(path.name for path in written) == ["toy2d.csv", "toy2d.md", "toy2d.tex"]
    assert (
        "| rings | Q-NSF (A) | -3.100 ± 0.020 |  |  | 1 | test set |" in (tmp_path / "tables" / "toy2d.md").read_text()
    )


def test_script_prints_the_tables_and_writes_the_files(runs_dir, tmp_path):
    out = tmp_path / "paper_tables"
    done = subprocess.run([TABLES, str(runs_dir), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| LRS (C) | ours: trainer.lr=0.001 |  | -9.90 ± 0.50 (n=1, test-set ±, -0.5σ) |" in done.stdout
    assert f"wrote {out / 'toy2d.csv'}" in done.stdout
    assert len(list(out.iterdir())) == 9
    assert "crashed/0/results.json" in done.stderr and "Traceback" not in done.stderr


def test_script_on_a_folder_without_results_exits_1_with_one_sentence(tmp_path):
    done = subprocess.run([TABLES, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == done.stderr.strip().splitlines()[0]
    assert done.stderr.startswith(f"no finished training run's results.json under {tmp_path}; train first")
    with pytest.raises(SystemExit, match="nowhere is not a folder"):
        tables_main([str(tmp_path / "nowhere")])


def test_two_seeds_a_changed_setting_and_an_eval_give_two_rows_from_real_runs(tmp_path):
    """The issue's acceptance: LRS on a 2-D dataset, seeds 0 and 1, the same with trainer.lr changed (seed 0),
    and a task=eval of the first run, all in one folder: two LRS rows, the note names trainer.lr, no eval row."""
    short = [*TINY_2D, "dataset=gaussian", "trainer.max_steps=20", "trainer.val_every=10"]
    lrsflows("-m", *short, "seed=0,1", "hydra.sweep.dir=outputs/sweep", cwd=tmp_path)
    lrsflows(*short, "trainer.lr=1e-3", cwd=tmp_path)
    first = next((tmp_path / "outputs" / "sweep").rglob("seed0*/checkpoints/best.pt"))
    evaluated = run_dir_of(lrsflows("task=eval", f"ckpt={first}", cwd=tmp_path))
    record = json.loads((tmp_path / evaluated / "results.json").read_text())
    assert (
        record["task"] == "eval"
        and record["config_digest"] == json.loads((first.parents[1] / "results.json").read_text())["config_digest"]
    )

    trained = [json.loads(path.read_text()) for path in sorted((tmp_path / "outputs").rglob("results.json"))]
    trained = [record for record in trained if record["task"] == "train"]
    assert len(trained) == 3
    for record in trained:
        assert record["data_kind"] == "toy2d" and record["device"] == "cpu" and record["torch_version"]
        assert record["lrsflows_version"] and re.match(r"\d{4}-\d\d-\d\dT", record["date"])
        assert "seed" not in record["config"] and "paths" not in record["config"]
        assert record["config_digest"] == config_digest(record["config"])
    done = subprocess.run([TABLES, str(tmp_path / "outputs")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "outputs" / "tables" / "toy2d.csv")
    assert len(table) == 2 and sorted(table["num_seeds"]) == [1, 2]
    two = table[table["num_seeds"] == 2].iloc[0]
    seed_values = [record["value"] for record in trained if record["config"]["trainer"]["lr"] == 5e-3]
    assert sorted(float(value) for value in two["seed_values"].split(";")) == sorted(seed_values)
    assert two["error"] == pytest.approx(2 * pd.Series(seed_values).std() / math.sqrt(2))
    assert "differs in trainer.lr: 0.001 | 0.005" in done.stdout
    assert "1 eval/sample result(s) left out" in done.stdout
    rows = [row for row in markdown_rows(done.stdout) if row[0] == "gaussian"]
    assert [row[1] for row in rows] == ["LRS (C)", "LRS (C)"]
    assert sorted(row[2] for row in rows) == ["trainer.lr=0.001", "trainer.lr=0.005"]
    print(done.stdout)  # shown with -s: the table the issue asks for
