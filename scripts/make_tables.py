"""Collect every results.json under DIR, average over seeds, and write the paper-style tables.

Usage: python scripts/make_tables.py DIR [--out OUT]   (OUT defaults to DIR/tables)
Prints the Markdown tables and the paths written; exits 1 with one sentence when there is nothing to tabulate.
"""

import argparse
import sys
from pathlib import Path

from lrsflows.results import aggregate, collect, render_markdown, write_tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", metavar="DIR", type=Path, help="folder holding the runs (searched recursively)")
    parser.add_argument("--out", metavar="OUT", type=Path, help="where the tables go (default: DIR/tables)")
    args = parser.parse_args(argv)
    try:
        runs = collect(args.runs)
    except FileNotFoundError as error:
        sys.exit(str(error))
    if runs.empty:
        sys.exit(
            f"no readable results.json under {args.runs}; train first, e.g. "
            "`python -m lrsflows dataset=miniboone model=lrs`, then run this on the folder holding the runs."
        )
    summary = aggregate(runs)
    print(render_markdown(summary))
    print()
    for path in write_tables(summary, args.out or args.runs / "tables"):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
