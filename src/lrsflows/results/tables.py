"""Paper-style tables from summarised runs: Markdown, LaTeX and CSV, all three from one frame per table.

Tabular and image runs are laid out like the paper (models down, datasets across) so a reader can
compare by eye; each of our cells says how many seeds it averages and, beside a verified published
row, how far it lies from it in the paper's own error bars. 2-D runs have no published numbers, so
they get a long table with the KL gap instead. A cell's ± is 2 standard errors across seeds when
there are several, and the single run's test-set ± (marked) when there is one.
"""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..data.specs import DATASETS
from ..train.kinds import KINDS
from ..transforms.elementwise import elementwise_families
from .collect import MEASURE_ERRORS, Collection
from .paper import ARCH_SUFFIXES, CITATIONS, paper_frame, row_labels

OURS = "ours"
TIDY_LEADING_COLUMNS = ["source", "row", "variant", "model", "model_label", "arch", "dataset", "cell"]
TIDY_DROPPED_COLUMNS = ["config"]  # the nested dict; config_digest names it and each run's results.json holds it
# The tables (file stems) in the order they are printed; which one a run belongs to is its data kind's `table`.
CAPTIONS = {
    "tabular": "Tabular density estimation: test log-likelihood in nats (higher is better), ± 2 standard errors",
    "images": "Image modelling: test bits per dimension, 8-bit data (lower is better), ± 2 standard errors",
    "toy2d": "2-D densities: test log-likelihood, true expected log-density and KL gap in nats, ± 2 standard errors",
}
_ARCH_NOTE = "(C) = coupling, (A) = autoregressive."
_CELLS_NOTE = (
    "Our cells: mean over n seeds ± 2·std/√n across seeds; where n=1, the run's own test-set ± 2 standard errors, "
    "marked as such. Runs share a cell only when their training configurations are identical but for the seed."
)
NOTES = {
    "tabular": (
        f"{_CELLS_NOTE} (+xσ) is (ours - paper) / σ, where σ is the published ± (2 standard errors) for the same "
        f"model, arch and dataset, given only beside verified published rows. {_ARCH_NOTE}"
    ),
    "images": f"{_CELLS_NOTE} The LRS paper prints no error bars for images, so our cells carry no σ. {_ARCH_NOTE}",
    "toy2d": (
        f"{_CELLS_NOTE} The paper shows 2-D densities only as pictures. KL gap = E_test[log p_true - log p_model]: "
        f"0 for a perfect model; blank where the true density is unknown. {_ARCH_NOTE}"
    ),
}
_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "σ": r"$\sigma$",
    "√": r"$\surd$",
    "·": r"$\cdot$",
}


@dataclass(frozen=True)
class Table:
    """One table: `tidy` holds every number and each cell's text (the CSV); `display` is its pivot (Markdown, LaTeX)."""

    name: str
    caption: str
    notes: str
    display: pd.DataFrame
    tidy: pd.DataFrame


def table_names(summary: pd.DataFrame) -> pd.Series:
    """Which table each summary row belongs to, from the data kind its run recorded."""
    return summary["data_kind"].map({name: kind.table for name, kind in KINDS.items()})


def build_tables(summary: pd.DataFrame, notes: tuple[str, ...] = ()) -> list[Table]:
    """The tables for the data kinds present in `summary` (the output of `aggregate`), in a fixed order.

    `notes` (e.g. a Collection's) are appended to every table's notes."""
    if summary.empty:
        return []
    names = table_names(summary)
    builders = {"tabular": _paper_layout_table, "images": _paper_layout_table, "toy2d": _toy2d_table}
    return [builders[name](summary[names == name], name, notes) for name in CAPTIONS if (names == name).any()]


def render_markdown(summary: pd.DataFrame, collection: Collection | None = None) -> str:
    """Every present table as Markdown, then the runs that have no results yet (unfinished or failed)."""
    notes = collection.notes if collection is not None else ()
    parts = [_markdown(table) for table in build_tables(summary, notes)]
    if collection is not None and not collection.incomplete.empty:
        parts.append(_incomplete_markdown(collection.incomplete))
    return "\n\n".join(parts)


def write_tables(summary: pd.DataFrame, out_dir: Path, collection: Collection | None = None) -> list[Path]:
    """Write `{name}.md`, `{name}.tex` and `{name}.csv` per table, and incomplete.csv if runs lack results."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    notes = collection.notes if collection is not None else ()
    outputs = {}
    for table in build_tables(summary, notes):
        outputs |= {
            f"{table.name}.md": _markdown(table),
            f"{table.name}.tex": _latex(table),
            f"{table.name}.csv": table.tidy.to_csv(index=False),
        }
    if collection is not None and not collection.incomplete.empty:
        outputs["incomplete.csv"] = collection.incomplete.to_csv(index=False)
    written = []
    for name, text in outputs.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _paper_layout_table(summary: pd.DataFrame, name: str, extra_notes: tuple[str, ...]) -> Table:
    titles = {name: spec.title for name, spec in DATASETS.items()}
    ours = labelled(summary).assign(dataset=lambda frame: frame["dataset"].replace(titles), source=OURS)
    paper = paper_frame().query("dataset in @ours.dataset")
    paper = paper.assign(row=row_labels(paper["model_label"], paper["arch"]), variant="")
    verified, unverified = paper[paper["verified"]], paper[~paper["verified"]]
    if name == "tabular" and not ours["arch"].eq("autoregressive").any():
        unverified = unverified.iloc[:0]  # reference rows for (A) runs only, and only when there are some
    reference = verified.dropna(subset=["error"]).rename(columns={"value": "paper_value", "error": "paper_error"})
    ours = ours.merge(reference[["model_label", "arch", "dataset", "paper_value", "paper_error"]], how="left")
    ours["sigma_diff"] = (ours["value"] - ours["paper_value"]) / ours["paper_error"]
    tidy = pd.concat([verified, ours, unverified], ignore_index=True)
    tidy["cell"] = tidy.apply(_paper_layout_cell, axis=1)
    tidy["source_label"] = tidy["source"].where(
        tidy["variant"].fillna("") == "", tidy["source"] + ": " + tidy["variant"]
    )
    rows = pd.MultiIndex.from_frame(tidy[["row", "source_label"]].drop_duplicates())  # blocks: paper, ours, unverified
    columns = sorted(tidy["dataset"].unique(), key=_dataset_position)
    display = tidy.pivot(index=["row", "source_label"], columns="dataset", values="cell").reindex(
        index=rows, columns=columns
    )
    display = display.fillna("").reset_index().rename_axis(columns=None)
    display = display.rename(columns={"row": "Model", "source_label": "Source"})
    sources = [source for source in CITATIONS if source in set(tidy["source"])]
    citations = " ".join(f"{source}: {CITATIONS[source]}." for source in sources)
    notes = _notes(NOTES[name], citations, ours, extra_notes)
    return Table(name, CAPTIONS[name], notes, display, _tidy(tidy.drop(columns="source_label")))


TOY2D_DECIMALS = 3  # KL gaps of good 2-D fits are a few thousandths of a nat


def _toy2d_table(summary: pd.DataFrame, name: str, extra_notes: tuple[str, ...]) -> Table:
    ours = labelled(summary).sort_values("dataset", kind="stable").reset_index(drop=True).assign(source=OURS)
    for measure in MEASURE_ERRORS:
        ours[f"{measure}_cell"] = _measure_cells(ours, measure, TOY2D_DECIMALS)
    ours["cell"] = ours["value_cell"]
    columns = {"Dataset": ours["dataset"], "Model": ours["row"]}
    if ours["variant"].ne("").any():
        columns["Configuration"] = ours["variant"]
    columns |= {
        "Test log-lik (nats)": ours["value_cell"],
        "True E log p (nats)": ours["true_log_prob_cell"],
        "KL gap (nats)": ours["kl_gap_cell"],
        "n": ours["num_seeds"].map("{:.0f}".format),
        "± over": ours["error_basis"],
    }
    notes = _notes(NOTES[name], "", ours, extra_notes)
    return Table(name, CAPTIONS[name], notes, pd.DataFrame(columns), _tidy(ours))


def _notes(base: str, citations: str, ours: pd.DataFrame, extra_notes: tuple[str, ...]) -> str:
    """The table's fixed notes, its reference rows' sources, the keys that split a model into several rows."""
    split = ours[ours["differing"].ne("")].drop_duplicates(subset=["row", "dataset", "differing"])
    differing = [f"{row.row} on {row.dataset} differs in {row.differing}." for row in split.itertuples()]
    if differing:
        differing.insert(0, "Rows of one model with different configurations:")
    return " ".join(part for part in [base, citations, *differing, *extra_notes] if part)


def labelled(summary: pd.DataFrame) -> pd.DataFrame:
    """Our runs with the paper's labels ("LRS (C)"): coupling before autoregressive, then the element-wise
    families in registry order (LRS, RQ-NSF, Q-NSF, ..., Affine); a family the registry lacks keeps its name."""
    families = elementwise_families()
    order = {"arch": list(ARCH_SUFFIXES), "family": list(families)}
    ours = summary.sort_values(
        ["arch", "family"], key=lambda column: _position(column, order[column.name]), kind="stable"
    )
    labels = {name: family.label for name, family in families.items()}
    ours = ours.assign(model_label=ours["family"].map(labels).fillna(ours["family"].fillna(ours["model"])))
    return ours.assign(row=row_labels(ours["model_label"], ours["arch"]))


def _position(column: pd.Series, order: list[str]) -> pd.Series:
    return column.map({key: position for position, key in enumerate(order)}).fillna(len(order))


def _dataset_position(title: str) -> tuple[int, str]:
    """Columns in the specs' order (the paper's, with MNIST and ImageNet 32x32 slotted in); unknown ones last."""
    titles = [spec.title for spec in DATASETS.values()]
    return (titles.index(title) if title in titles else len(titles), title)


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """The CSV: identifying columns and cell text first, then every number; columns empty for every row dropped."""
    frame = frame.drop(columns=[column for column in TIDY_DROPPED_COLUMNS if column in frame])
    leading = [column for column in TIDY_LEADING_COLUMNS if column in frame]
    frame = frame[leading + [column for column in frame if column not in leading]]
    if "num_seeds" in frame:
        frame = frame.astype({"num_seeds": "Int64"})
    return frame.dropna(axis=1, how="all").reset_index(drop=True)


def with_error(value: float, error: float, decimals: int = 2) -> str:
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
    cells = [with_error(value, error, decimals) for value, error in zip(ours[measure], errors)]
    return pd.Series(cells, index=ours.index)


def _paper_layout_cell(row: pd.Series) -> str:
    text = with_error(row["value"], row["error"])
    if row["source"] != OURS:
        return text
    remarks = [f"n={row['num_seeds']:.0f}" + (", test-set ±" if row["num_seeds"] == 1 else "")]
    if pd.notna(row.get("sigma_diff")):
        remarks.append(f"{row['sigma_diff']:+.1f}σ")
    return f"{text} ({', '.join(remarks)})"


def _incomplete_markdown(incomplete: pd.DataFrame) -> str:
    lines = [
        f"- {row.status}: {row.run_dir}" + (f" ({row.reason})" if row.status == "failed" else "")
        for row in incomplete.itertuples()
    ]
    return "\n".join([f"### Runs without results ({len(incomplete)}): not in the tables above", "", *lines])


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
