"""Result tables: what a result records, the paper's published numbers, collection of runs, and rendering."""

from .collect import Collection, aggregate, collect
from .paper import paper_frame
from .tables import Table, build_tables, render_markdown, write_tables

__all__ = [
    "Collection",
    "Table",
    "aggregate",
    "build_tables",
    "collect",
    "paper_frame",
    "render_markdown",
    "write_tables",
]
