"""One self-contained HTML page for a folder of runs (a sweep), to read or pass on without TensorBoard or a server.

Usage: lrsflows-report RUNS [--out FILE]   (FILE defaults to RUNS/report.html; also `make report RUNS=...`)
The page holds the tables lrsflows-tables makes, every dataset's learning curves, each run's latest pictures, its
configuration and provenance, and the runs without results (unfinished or failed). Pictures are data: URIs and the
CSS is inline, so the one file opens anywhere, offline. Exits 1 with one sentence when RUNS holds no training run.
"""

import argparse
import base64
import io
import json
import logging
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib import colormaps
from matplotlib.figure import Figure

from ..errors import RunError
from ..files import write_atomically
from ..train.logger import METRICS_FILE
from .collect import HYDRA_CONFIG, IDENTITY_KEYS, Collection, aggregate, collect
from .tables import build_tables, labelled

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
RESULTS_FILE = "results.json"
PICTURES_DIR = "pictures"
CURVE_TAG = "val/log_prob"
FINISHED = "finished"


@dataclass(frozen=True)
class Run:
    """One run dir as the page shows it."""

    name: str  # its path under the report's folder
    anchor: str
    dataset: str
    label: str  # the tables' row label, e.g. "LRS (C)"
    status: str  # finished, unfinished or failed
    reason: str
    metrics: pd.DataFrame  # metrics.csv: step, tag, value
    pictures: list[tuple[str, str]]  # (file name, data URI) of the latest step's pictures
    config: str
    provenance: dict[str, str]

    @property
    def last_step(self) -> int | None:
        return int(self.metrics["step"].max()) if len(self.metrics) else None


def write_report(runs: Path, out: Path | None = None, collection: Collection | None = None) -> Path:
    """Write the report of every training run under `runs` to `out` (default runs/report.html) and return its path;
    a multirun's end calls this on its sweep dir, with the `collection` of it it has made already. FileNotFoundError
    when `runs` is no folder or holds no training run; WriteError when `out` cannot be written."""
    runs = Path(runs)
    out = Path(out) if out is not None else runs / REPORT_FILE
    collection = collection if collection is not None else collect(runs)
    if collection.runs.empty and collection.incomplete.empty:
        raise FileNotFoundError(
            f"no training run under {runs}; train first, e.g. `python -m lrsflows -m experiment=demo`, then run this "
            "on the folder holding the runs."
        )
    page = _page(runs, collection)
    write_atomically(out, lambda handle: handle.write(page.encode("utf-8")))
    return out


def _page(folder: Path, collection: Collection) -> str:
    runs = _runs(folder, collection)
    statuses = pd.Series([run.status for run in runs]).value_counts()
    template = Environment(loader=PackageLoader(__package__, "templates"), autoescape=select_autoescape()).get_template(
        "report.html.j2"
    )
    return template.render(
        folder=str(folder),
        written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        counts=", ".join(f"{count} {status}" for status, count in statuses.items()),
        tables=[
            {"caption": table.caption, "notes": table.notes, "html": table.display.to_html(index=False, border=0)}
            for table in build_tables(aggregate(collection.runs), collection.notes)
        ],
        curves=_curves(runs),
        without_results=[run for run in runs if run.status != FINISHED],
        runs=runs,
    )


def _runs(folder: Path, collection: Collection) -> list[Run]:
    """Finished runs and those without results, ordered by dataset, then as the tables order models."""
    finished = collection.runs[["run_dir", *IDENTITY_KEYS]].assign(status=FINISHED, reason="")
    frame = labelled(pd.concat([finished, collection.incomplete], ignore_index=True))
    frame = frame.sort_values("dataset", kind="stable")
    return [
        Run(
            name=_name(folder, Path(row.run_dir)),
            anchor=f"run-{position}",
            dataset=row.dataset,
            label=row.row,
            status=row.status,
            reason=row.reason,
            metrics=_metrics(Path(row.run_dir)),
            pictures=_latest_pictures(Path(row.run_dir) / PICTURES_DIR),
            config=_text(Path(row.run_dir) / HYDRA_CONFIG),
            provenance=_provenance(Path(row.run_dir) / RESULTS_FILE) if row.status == FINISHED else {},
        )
        for position, row in enumerate(frame.itertuples())
    ]


def _name(folder: Path, run_dir: Path) -> str:
    relative = run_dir.relative_to(folder)
    return relative.as_posix() if relative.parts else run_dir.resolve().name


def _metrics(run_dir: Path) -> pd.DataFrame:
    """metrics.csv's numeric rows (a killed run's torn last line left out); none when the run has no such file."""
    path = run_dir / METRICS_FILE
    empty = pd.DataFrame({"step": [], "tag": [], "value": []})
    if not path.is_file():
        return empty
    try:
        metrics = pd.read_csv(path, usecols=list(empty), on_bad_lines="skip")
    except (OSError, ValueError) as error:
        log.warning("no learning curve for %s: %s is unreadable (%s)", run_dir, METRICS_FILE, error)
        return empty
    metrics[["step", "value"]] = metrics[["step", "value"]].apply(pd.to_numeric, errors="coerce")
    return metrics.dropna()


def _curves(runs: list[Run]) -> list[tuple[str, str]]:
    """(dataset, PNG data URI) per dataset that has validation scores: every run's curve, one colour per model."""
    palette = colormaps["tab10"]
    labels = dict.fromkeys(run.label for run in runs)  # one colour per model on every dataset's chart
    colours = {label: palette(position % palette.N) for position, label in enumerate(labels)}
    curves = []
    for dataset in dict.fromkeys(run.dataset for run in runs):
        scored = [(run, run.metrics[run.metrics["tag"] == CURVE_TAG]) for run in runs if run.dataset == dataset]
        scored = [(run, points) for run, points in scored if len(points)]
        if not scored:
            continue
        figure = Figure(figsize=(5.6, 3.6), layout="constrained")
        axes = figure.add_subplot()
        entries = set()
        for run, points in scored:
            finished = run.status == FINISHED
            entry = run.label if finished else f"{run.label} ({run.status})"
            axes.plot(
                points["step"],
                points["value"],
                color=colours[run.label],
                linestyle="-" if finished else "--",
                marker="o",
                markersize=3,
                label=entry if entry not in entries else "_nolegend_",  # seeds of one model: one entry
            )
            entries.add(entry)
        axes.set(title=dataset, xlabel="step", ylabel="validation log-likelihood (nats)")
        axes.grid(alpha=0.3)
        axes.legend()
        curves.append((dataset, _figure_uri(figure)))
    return curves


def _latest_pictures(folder: Path) -> list[tuple[str, str]]:
    """The PNGs of the latest step drawn (names end in `step<number>.png`; all of them where none does)."""
    paths = sorted(folder.glob("*.png")) if folder.is_dir() else []
    steps = {path: _step(path) for path in paths}
    latest = max(steps.values(), default=None)
    return [(path.name, _data_uri(path.read_bytes())) for path in paths if steps[path] == latest]


def _step(path: Path) -> int:
    digits = path.stem.rpartition("step")[2]
    return int(digits) if digits.isdigit() else -1


def _provenance(path: Path) -> dict[str, str]:
    """Every key of results.json but the configuration (shown as YAML), as text."""
    record = json.loads(path.read_text(encoding="utf-8"))
    return {
        key: json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        for key, value in record.items()
        if key != "config"
    }


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _figure_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return _data_uri(buffer.getvalue())


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def main(argv: list[str] | None = None) -> None:
    """The `lrsflows-report` command (`make report`)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", metavar="RUNS", type=Path, help="folder holding the runs (searched recursively)")
    parser.add_argument("--out", metavar="FILE", type=Path, help=f"where the page goes (default: RUNS/{REPORT_FILE})")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.runs, args.out)
    except (FileNotFoundError, RunError) as error:
        sys.exit(str(error))
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
