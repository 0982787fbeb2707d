"""Result tables: the paper's published numbers, collection of runs' results.json, and rendering."""

from .collect import aggregate, collect
from .paper import paper_frame
from .tables import Table, build_tables, render_markdown, write_tables

__all__ = ["Table", "aggregate", "build_tables", "collect", "paper_frame", "render_markdown", "write_tables"]
