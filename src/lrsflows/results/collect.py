"""Read a folder of runs into one frame of finished training results, and summarise them over seeds.

A table row is one (dataset, model, arch, configuration digest): runs share a row only when their
training configurations are identical but for the seed, so a summary never averages different
settings. Only training results count (task=eval and task=sample outputs never do). A broken file
costs one warning, not the table. Run dirs that hold a config but no results are listed as
unfinished, or as failed when the run left failure.json.
"""

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from ..data.specs import data_kind
from .record import FAILURE_FILE, flatten

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("dataset", "model", "arch", "metric", "value")
GROUP_KEYS = ["dataset", "model", "arch", "metric", "config_digest"]
# Each measure a table shows and the key of its per-run (test-set) error bar, 2 standard errors.
MEASURE_ERRORS = {"value": "error", "true_log_prob": "true_log_prob_error", "kl_gap": "kl_gap_error"}
NUMERIC_KEYS = [*MEASURE_ERRORS, *MEASURE_ERRORS.values(), "error_original", "seed"]
COLUMNS = list(dict.fromkeys([*REQUIRED_KEYS, "seed", "unit", "higher_is_better", *NUMERIC_KEYS, "run_dir"]))
LEGACY = "legacy"  # config_digest prefix of results.json files written before runs recorded their configuration
LIST_SEPARATOR = ";"
HYDRA_CONFIG = Path(".hydra") / "config.yaml"
# What a run without results trains, read from its Hydra config: column -> config key.
IDENTITY_KEYS = {"dataset": "dataset.name", "model": "model.name", "family": "model.family", "arch": "model.arch"}
INCOMPLETE_COLUMNS = ["run_dir", "status", "reason", *IDENTITY_KEYS]


@dataclass(frozen=True)
class Collection:
    """Finished training runs (one row each), runs without results, and one-line notes on what was left out."""

    runs: pd.DataFrame
    incomplete: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=INCOMPLETE_COLUMNS))
    notes: tuple[str, ...] = ()


def collect(folder: Path | str) -> Collection:
    """Every results.json under `folder` (recursively) that a training run wrote, and every training run dir
    (a Hydra config of task=train) that has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass the folder holding the training runs (e.g. outputs/).")
    records = [record for path in sorted(folder.rglob("results.json")) if (record := _read_run(path)) is not None]
    training = [record for record in records if record.get("task") in ("train", None)]
    notes = []
    if skipped := len(records) - len(training):
        notes.append(f"{skipped} eval/sample result(s) left out: only training runs are table rows.")
    legacy = [record for record in training if record.get("task") is None]
    if legacy:
        notes.append(
            f"{len(legacy)} results.json file(s) predate configuration records; each is its own row, never averaged."
        )
    runs = _frame(training)
    runs, duplicates = _drop_repeated_seeds(runs)
    notes += duplicates
    finished = {Path(record["run_dir"]) for record in records}
    return Collection(runs, _incomplete_runs(folder, finished), tuple(notes))


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, arch, metric, configuration): each measure's mean over seeds, its spread
    (std, and 2 standard errors = 2·std/√n when n ≥ 2), the mean of the runs' own test-set error bars, the
    error bar a table shows (`error`: over seeds when n ≥ 2, the run's test-set one when n = 1), and every
    seed's value and run dir. Also the keys whose values differ between rows of one (dataset, model, arch)."""
    groups = runs.groupby(GROUP_KEYS, sort=True, dropna=False)
    rows = []
    for keys, group in groups:
        count = len(group)
        row = dict(zip(GROUP_KEYS, keys))
        row |= {
            "data_kind": group["data_kind"].iloc[0],
            "family": group["family"].iloc[0],
            "unit": group["unit"].iloc[0],
            "higher_is_better": group["higher_is_better"].iloc[0],
            "num_seeds": count,
            "error_basis": "seeds" if count > 1 else "test set",
            "error_original": group["error_original"].mean(),
            "seeds": LIST_SEPARATOR.join(_seed_text(seed) for seed in group["seed"]),
            "seed_values": LIST_SEPARATOR.join(repr(float(value)) for value in group["value"]),
            "run_dirs": LIST_SEPARATOR.join(group["run_dir"]),
            "config": group["config"].iloc[0],
        }
        for measure, error in MEASURE_ERRORS.items():
            values = group[measure].dropna()
            spread = values.std() if len(values) > 1 else math.nan
            seed_error = 2.0 * spread / math.sqrt(len(values)) if len(values) > 1 else math.nan
            test_error = group[error].mean()
            row |= {
                measure: values.mean() if len(values) else math.nan,
                f"{measure}_std": spread,
                f"{measure}_seed_error": seed_error,
                f"{measure}_test_error": test_error,
                error: seed_error if count > 1 else test_error,
            }
        rows.append(row)
    summary = pd.DataFrame(rows)
    if summary.empty:
        return summary
    return _with_variants(summary)


def _with_variants(summary: pd.DataFrame) -> pd.DataFrame:
    """`variant`: what sets a row apart from the other rows of its (dataset, model, arch) ("trainer.lr=0.001"),
    empty when it is the only one; `differing`: those keys with every value they take ("trainer.lr: 0.0005 | 0.001")."""
    summary = summary.assign(variant="", differing="")
    for _, group in summary.groupby(["dataset", "model", "arch", "metric"], sort=False):
        if len(group) < 2:
            continue
        flat = {
            index: flatten(config) if isinstance(config, dict) else None for index, config in group["config"].items()
        }
        recorded = [config for config in flat.values() if config is not None]
        keys = sorted({key for config in recorded for key in config})
        differing = [key for key in keys if len({_value_text(config.get(key)) for config in recorded}) > 1]
        description = "; ".join(
            f"{key}: "
            + " | ".join(_value_text(value) for value in _distinct_sorted(config.get(key) for config in recorded))
            for key in differing
        )
        for index, config in flat.items():
            if config is None:
                label = f"no config recorded ({summary.at[index, 'run_dirs']})"
            else:
                label = ", ".join(f"{key}={_value_text(config.get(key))}" for key in differing)
                label = label or f"config {summary.at[index, 'config_digest']}"
            summary.at[index, "variant"] = label
            summary.at[index, "differing"] = description
    return summary


def _distinct_sorted(values) -> list:
    """Each value once, numbers in ascending order before anything else."""
    distinct = {_value_text(value): value for value in values}
    numeric = lambda value: isinstance(value, (int, float)) and not isinstance(value, bool)  # noqa: E731
    return sorted(distinct.values(), key=lambda value: (0, value, "") if numeric(value) else (1, 0, str(value)))


def _value_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _seed_text(seed) -> str:
    return "?" if pd.isna(seed) else f"{seed:.0f}"


def _frame(records: list[dict]) -> pd.DataFrame:
    runs = pd.DataFrame.from_records(records)
    runs = runs.reindex(
        columns=list(dict.fromkeys([*COLUMNS, "family", "config", "config_digest", "data_kind", *runs.columns]))
    )
    runs[NUMERIC_KEYS] = runs[NUMERIC_KEYS].apply(pd.to_numeric, errors="coerce")
    legacy = runs["config_digest"].isna()
    # Without a recorded configuration nothing says two runs were trained alike: one group per file.
    runs.loc[legacy, "config_digest"] = [f"{LEGACY}-{position}" for position in range(int(legacy.sum()))]
    runs.loc[legacy, "data_kind"] = [_guess_kind(row) for _, row in runs[legacy].iterrows()]
    return runs


def _guess_kind(record: pd.Series) -> str:
    """The data kind of a results.json that does not record it (new results record their kind, so this serves
    old files only): bits/dim are images, else the kind of the dataset's spec."""
    return "image" if record["metric"] == "test_bits_per_dim" else data_kind(record["dataset"])


def _drop_repeated_seeds(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The same seed trained twice with one configuration is one run counted twice: keep the first."""
    seeded = runs["seed"].notna()
    repeated = runs[seeded].duplicated(subset=[*GROUP_KEYS, "seed"], keep="first")
    repeated = repeated.reindex(runs.index, fill_value=False)
    notes = [
        f"{row.run_dir} repeats seed {row.seed:.0f} of an identical configuration already counted; left out."
        for row in runs[repeated].itertuples()
    ]
    return runs[~repeated].reset_index(drop=True), notes


def _incomplete_runs(folder: Path, finished: set[Path]) -> pd.DataFrame:
    """Training run dirs (Hydra config with task=train) without results.json, with what they train: failed if they
    left failure.json."""
    rows = []
    for config_path in sorted(folder.rglob(str(HYDRA_CONFIG))):
        run_dir = config_path.parent.parent
        if run_dir in finished or (config := _config(config_path)) is None or config.get("task", "train") != "train":
            continue
        identity = {key: str(OmegaConf.select(config, path, default="?")) for key, path in IDENTITY_KEYS.items()}
        failure = run_dir / FAILURE_FILE
        if failure.is_file():
            rows.append({"run_dir": str(run_dir), "status": "failed", "reason": _failure_reason(failure), **identity})
        else:
            rows.append({"run_dir": str(run_dir), "status": "unfinished", "reason": "no results.json yet", **identity})
    return pd.DataFrame(rows, columns=INCOMPLETE_COLUMNS)


def _config(config_path: Path):
    try:
        return OmegaConf.load(config_path)
    except Exception as error:  # a torn or hand-edited config: say so, don't lose the table
        log.warning("skipping %s: not a readable config (%s)", config_path, str(error).splitlines()[0])
        return None


def _failure_reason(path: Path) -> str:
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["error"])
    except (OSError, ValueError, KeyError, TypeError):
        return "the run failed (its failure.json is unreadable)"


def _read_run(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return _skip(path, f"not valid JSON ({error})")
    if not isinstance(record, dict):
        return _skip(path, "not a JSON object")
    missing = [key for key in REQUIRED_KEYS if record.get(key) is None]
    if missing:
        return _skip(path, f"lacks {', '.join(missing)}")
    value = record["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return _skip(path, f"value {value!r} is not a finite number")
    if record.get("task") is None and "checkpoint" in record:
        record["task"] = "eval"  # old eval results: only they name the checkpoint they scored
    return {**record, "run_dir": str(path.parent)}


def _skip(path: Path, reason: str) -> None:
    log.warning("skipping %s: %s", path, reason)
