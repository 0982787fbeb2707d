"""Collect every training run's results.json under DIR, summarise each configuration over seeds, write the tables.

Usage: lrsflows-tables DIR [--out OUT]   (OUT defaults to DIR/tables; also `python -m lrsflows.results.command`)
Prints the Markdown tables, the runs that have no results (unfinished or failed) and the paths written;
exits 1 with one sentence when there is nothing to tabulate.
"""

import argparse
import logging
import sys
from pathlib import Path

from . import Collection, aggregate, collect, render_markdown, write_tables


class NothingToTabulate(Exception):
    """No finished training run under the folder: str() says what to do; `listing` is the Markdown list of the
    runs without results (empty when there are none), `collection` what was read."""

    def __init__(self, runs: Path, collection: Collection):
        listing = render_markdown(aggregate(collection.runs), collection) if not collection.incomplete.empty else ""
        self.listing, self.collection = listing, collection
        super().__init__(
            f"{listing + chr(10) if listing else ''}no finished training run's results.json under {runs}; train "
            "first, e.g. `python -m lrsflows dataset=miniboone model=lrs`, then run this on the folder holding the runs."
        )


def tabulate(runs: Path, out: Path | None = None) -> tuple[str, Collection]:
    """The Markdown tables of every training run under `runs` (and the runs without results), written as
    Markdown, LaTeX and CSV to `out` (default: runs/tables): what `lrsflows-tables` prints, and a sweep's summary.
    Raises FileNotFoundError for a missing folder, NothingToTabulate (with the unfinished runs' listing, if any)."""
    collection = collect(runs)
    summary = aggregate(collection.runs)
    if summary.empty:
        raise NothingToTabulate(runs, collection)
    written = write_tables(summary, out or runs / "tables", collection)
    text = render_markdown(summary, collection) + "\n\n" + "\n".join(f"wrote {path}" for path in written)
    return text, collection


def main(argv: list[str] | None = None) -> None:
    """The `lrsflows-tables` command (`make tables`)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", metavar="DIR", type=Path, help="folder holding the runs (searched recursively)")
    parser.add_argument("--out", metavar="OUT", type=Path, help="where the tables go (default: DIR/tables)")
    args = parser.parse_args(argv)
    try:
        text, _ = tabulate(args.runs, args.out)
    except (FileNotFoundError, NothingToTabulate) as error:
        sys.exit(str(error))
    print(text)


if __name__ == "__main__":
    main()
