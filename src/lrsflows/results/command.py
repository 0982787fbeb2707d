"""Collect every training run's results.json under DIR, summarise each configuration over seeds, write the tables.

Usage: lrsflows-tables DIR [--out OUT]   (OUT defaults to DIR/tables; also `python -m lrsflows.results.command`)
Prints the Markdown tables, the runs that have no results (unfinished or failed) and the paths written;
exits 1 with one sentence when there is nothing to tabulate.
"""

import argparse
import logging
import sys
from pathlib import Path

from . import aggregate, collect, render_markdown, write_tables


def main(argv: list[str] | None = None) -> None:
    """The `lrsflows-tables` command (`make tables`)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", metavar="DIR", type=Path, help="folder holding the runs (searched recursively)")
    parser.add_argument("--out", metavar="OUT", type=Path, help="where the tables go (default: DIR/tables)")
    args = parser.parse_args(argv)
    try:
        collection = collect(args.runs)
    except FileNotFoundError as error:
        sys.exit(str(error))
    summary = aggregate(collection.runs)
    if summary.empty:
        if not collection.incomplete.empty:
            print(render_markdown(summary, collection))
        sys.exit(
            f"no finished training run's results.json under {args.runs}; train first, e.g. "
            "`python -m lrsflows dataset=miniboone model=lrs`, then run this on the folder holding the runs."
        )
    print(render_markdown(summary, collection))
    print()
    for path in write_tables(summary, args.out or args.runs / "tables", collection):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
