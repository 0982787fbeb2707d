"""Read every run's results.json under a folder into one DataFrame, and average the runs over seeds.

A broken or older file must not cost the whole table, so unreadable files are skipped with a
one-line warning and keys added to results.json later come out as NaN columns.
"""

import json
import logging
import math
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("dataset", "model", "arch", "metric", "value")
GROUP_KEYS = ["dataset", "model", "arch", "metric"]
# Each averaged measure and the key of its per-run error bar (2 standard errors).
MEASURE_ERRORS = {"value": "error", "true_log_prob": "true_log_prob_error", "kl_gap": "kl_gap_error"}
NUMERIC_KEYS = [*MEASURE_ERRORS, *MEASURE_ERRORS.values(), "error_original"]
COLUMNS = list(dict.fromkeys([*REQUIRED_KEYS, "seed", "unit", "higher_is_better", *NUMERIC_KEYS, "run_dir"]))


def collect(folder: Path | str) -> pd.DataFrame:
    """One row per readable results.json found recursively under `folder`, plus the `run_dir` it lies in."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass the folder holding the training runs (e.g. outputs/).")
    records = [record for path in sorted(folder.rglob("results.json")) if (record := _read_run(path)) is not None]
    runs = pd.DataFrame.from_records(records)
    runs = runs.reindex(columns=list(dict.fromkeys([*COLUMNS, *runs.columns])))
    runs[NUMERIC_KEYS] = runs[NUMERIC_KEYS].apply(pd.to_numeric, errors="coerce")
    return runs


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, arch, metric): means of each measure and its error bar, std over seeds, run count."""
    aggregations = {"unit": ("unit", "first"), "higher_is_better": ("higher_is_better", "first")}
    for measure, error in MEASURE_ERRORS.items():
        aggregations |= {measure: (measure, "mean"), error: (error, "mean"), f"{measure}_std": (measure, "std")}
    aggregations |= {"error_original": ("error_original", "mean"), "num_seeds": ("value", "size")}
    return runs.groupby(GROUP_KEYS, sort=True).agg(**aggregations).reset_index()


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
    return {**record, "run_dir": str(path.parent)}


def _skip(path: Path, reason: str) -> None:
    log.warning("skipping %s: %s", path, reason)
