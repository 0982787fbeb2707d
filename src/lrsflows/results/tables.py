"""Paper-style tables from aggregated runs: Markdown, LaTeX and tidy CSV, the paper's rows beside ours.

Tabular and image runs are laid out like the paper (models down, datasets across) so a reader can
compare by eye, and each of our cells says how far it lies from the paper in the paper's own error
bars. 2-D runs have no published numbers, so they get a long table with the KL gap instead.
"""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .collect import MEASURE_ERRORS
from .paper import ARCH_SUFFIXES, DATASET_TITLES, MODEL_LABELS, TABULAR_DATASETS, paper_frame, row_labels

OURS = "ours"
# Our rows follow the paper: coupling before autoregressive, then LRS, RQ-NSF, Q-NSF, Affine; unknown keys last.
ROW_ORDER = {"arch": list(ARCH_SUFFIXES), "model": list(MODEL_LABELS)}
TIDY_LEADING_COLUMNS = ["source", "row", "model", "model_label", "arch", "dataset"]
KINDS = ("tabular", "images", "toy2d")
CAPTIONS = {
    "tabular": "Tabular density estimation: test log-likelihood in nats (higher is better), ± 2 standard errors",
    "images": "Image modelling: test bits per dimension, 8-bit data (lower is better), ours ± 2 standard errors",
    "toy2d": "2-D densities: test log-likelihood, true expected log-density and KL gap in nats, ± 2 standard errors",
}
_ARCH_NOTE = "(C) = coupling, (A) = autoregressive."
_SEEDS_NOTE = "n=k: value and ± are means over k seeds."
NOTES = {
    "tabular": (
        "Rows from a paper are published numbers (results-paper.md); 'NSF paper (unverified)' rows are recalled, "
        "not yet checked against that paper. In our cells, (+xσ) is (ours - paper) / σ, where σ is the paper's ± "
        f"(2 standard errors) for the same model, arch and dataset. {_SEEDS_NOTE} {_ARCH_NOTE}"
    ),
    "images": (
        "Rows from the LRS paper are published numbers (results-paper.md); it prints no error bars, so our cells "
        f"carry no distance in σ. {_SEEDS_NOTE} {_ARCH_NOTE}"
    ),
    "toy2d": (
        "The paper shows 2-D densities only as pictures. KL gap = E_test[log p_true - log p_model]: 0 for a perfect "
        "model; blank where the true density is unknown. Values and ± are means over the seeds counted. "
        f"{_ARCH_NOTE}"
    ),
}
_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "σ": r"$\sigma$",
}  # fmt: skip


@dataclass(frozen=True)
class Table:
    """One table: `display` holds the formatted cells, `tidy` the numbers behind them (what the CSV keeps)."""

    name: str
    caption: str
    notes: str
    display: pd.DataFrame
    tidy: pd.DataFrame


def table_kinds(summary: pd.DataFrame) -> pd.Series:
    """Which table each row belongs to: bits/dim runs are images, the MAF five are tabular, the rest 2-D."""
    kinds = pd.Series("toy2d", index=summary.index).mask(summary["dataset"].isin(TABULAR_DATASETS), "tabular")
    return kinds.mask(summary["metric"].eq("test_bits_per_dim"), "images")


def build_tables(summary: pd.DataFrame) -> list[Table]:
    """The tables for the kinds of run present in `summary` (the output of `aggregate`), in a fixed order."""
    kinds = table_kinds(summary)
    builders = {"tabular": _paper_layout_table, "images": _paper_layout_table, "toy2d": _toy2d_table}
    return [builders[kind](summary[kinds == kind], kind) for kind in KINDS if (kinds == kind).any()]


def render_markdown(summary: pd.DataFrame) -> str:
    """Every present table as Markdown, one after another."""
    return "\n\n".join(_markdown(table) for table in build_tables(summary))


def write_tables(summary: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write `{kind}.md`, `{kind}.tex` and `{kind}.csv` for each kind present; return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for table in build_tables(summary):
        for suffix, text in (("md", _markdown(table)), ("tex", _latex(table)), ("csv", table.tidy.to_csv(index=False))):
            path = out_dir / f"{table.name}.{suffix}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def _paper_layout_table(summary: pd.DataFrame, kind: str) -> Table:
    ours = _labelled(summary).assign(dataset=lambda frame: frame["dataset"].replace(DATASET_TITLES), source=OURS)
    paper = paper_frame().query("dataset in @ours.dataset")
    paper = paper.assign(row=row_labels(paper["model_label"], paper["arch"]))
    reference = paper.dropna(subset=["error"]).rename(columns={"value": "paper_value", "error": "paper_error"})
    ours = ours.merge(reference[["model_label", "arch", "dataset", "paper_value", "paper_error"]], how="left")
    ours["sigma_diff"] = (ours["value"] - ours["paper_value"]) / ours["paper_error"]
    tidy = pd.concat([paper, ours], ignore_index=True)
    tidy["cell"] = tidy.apply(_paper_layout_cell, axis=1)
    rows = pd.MultiIndex.from_frame(tidy[["row", "source"]].drop_duplicates())  # paper first, in its order
    columns = sorted(tidy["dataset"].unique(), key=_dataset_position)
    display = tidy.pivot(index=["row", "source"], columns="dataset", values="cell").reindex(index=rows, columns=columns)
    display = display.fillna("").reset_index().rename_axis(columns=None)
    display = display.rename(columns={"row": "Model", "source": "Source"})
    return Table(kind, CAPTIONS[kind], NOTES[kind], display, _tidy(tidy.drop(columns="cell")))


TOY2D_DECIMALS = 3  # KL gaps of good 2-D fits are a few thousandths of a nat


def _toy2d_table(summary: pd.DataFrame, kind: str) -> Table:
    ours = _labelled(summary).sort_values("dataset", kind="stable").reset_index(drop=True)
    display = pd.DataFrame(
        {
            "Dataset": ours["dataset"],
            "Model": ours["row"],
            "Test log-lik (nats)": _measure_cells(ours, "value", TOY2D_DECIMALS),
            "True E log p (nats)": _measure_cells(ours, "true_log_prob", TOY2D_DECIMALS),
            "KL gap (nats)": _measure_cells(ours, "kl_gap", TOY2D_DECIMALS),
            "Seeds": ours["num_seeds"].map("{:.0f}".format),
        }
    )
    return Table(kind, CAPTIONS[kind], NOTES[kind], display, _tidy(ours))


def _labelled(summary: pd.DataFrame) -> pd.DataFrame:
    """Our runs in ROW_ORDER with the paper's labels ("LRS (C)")."""
    ours = summary.sort_values(["arch", "model"], key=_row_position, kind="stable")
    ours = ours.assign(model_label=ours["model"].replace(MODEL_LABELS))
    return ours.assign(row=row_labels(ours["model_label"], ours["arch"]))


def _row_position(column: pd.Series) -> pd.Series:
    order = ROW_ORDER[column.name]
    return column.map({key: position for position, key in enumerate(order)}).fillna(len(order))


def _dataset_position(title: str) -> tuple[int, str]:
    """Columns in DATASET_TITLES order (the paper's, with MNIST and ImageNet 32x32 slotted in); unknown ones last."""
    titles = list(DATASET_TITLES.values())
    return (titles.index(title) if title in titles else len(titles), title)


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """The CSV's numbers: identifying columns first, columns empty for every row dropped."""
    leading = [column for column in TIDY_LEADING_COLUMNS if column in frame]
    frame = frame[leading + [column for column in frame if column not in leading]].astype({"num_seeds": "Int64"})
    return frame.dropna(axis=1, how="all")


def _with_error(value: float, error: float, decimals: int = 2) -> str:
    """ "value ± error" at the paper's two decimals (2-D tables: three); no ± where there is no error bar, blank where no value.

    An error bar too small for those decimals keeps one significant digit (bits/dim errors are ~0.001), so it never
    reads "± 0.00"; an exactly constant quantity (the log-density of a uniform target) reads "± 0".
    """
    if pd.isna(value):
        return ""
    if pd.isna(error):
        return f"{value:.{decimals}f}"
    if abs(error) < 1e-12:
        return f"{value:.{decimals}f} ± 0"
    shown = f"{error:.{decimals}f}" if abs(error) >= 0.5 * 10**-decimals else f"{error:.1g}"
    return f"{value:.{decimals}f} ± {shown}"


def _measure_cells(ours: pd.DataFrame, measure: str, decimals: int) -> pd.Series:
    errors = ours[MEASURE_ERRORS[measure]]
    cells = [_with_error(value, error, decimals) for value, error in zip(ours[measure], errors)]
    return pd.Series(cells, index=ours.index)


def _paper_layout_cell(row: pd.Series) -> str:
    remarks = [f"{row['sigma_diff']:+.1f}σ"] if pd.notna(row["sigma_diff"]) else []
    if row["num_seeds"] > 1:
        remarks.append(f"n={row['num_seeds']:.0f}")
    text = _with_error(row["value"], row["error"])
    return f"{text} ({', '.join(remarks)})" if remarks else text


def _markdown(table: Table) -> str:
    """Markdown by hand: pandas' to_markdown needs `tabulate`, which the project does not depend on."""
    def line(cells) -> str:
        return "| " + " | ".join(str(cell).replace("|", r"\|") for cell in cells) + " |"

    grid = [line(table.display.columns), line(["---"] * table.display.shape[1])]
    grid += [line(cells) for cells in table.display.itertuples(index=False)]
    return "\n".join([f"### {table.caption}", "", *grid, "", table.notes])


def _latex(table: Table) -> str:
    """A booktabs table (needs \\usepackage{booktabs}) via pandas' Styler, whose jinja2 comes with torch.

    Cells, headers and caption are escaped here rather than by Styler, which leaves ± and σ as raw Unicode.
    """
    cells = table.display.map(_latex_escape).rename(columns=_latex_escape)
    return cells.style.hide(axis="index").to_latex(
        caption=_latex_escape(f"{table.caption}. {table.notes}"),
        label=f"tab:{table.name}",
        position_float="centering",
        column_format="l" * cells.shape[1],
        hrules=True,
    )


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(character, character) for character in str(text))
