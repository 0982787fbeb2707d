"""lrsflows: Linear Rational Spline flows and their RQ-NSF / Q-NSF baselines.

`import lrsflows` stays light (no torch): the command line checks its settings before torch is imported.
`lrsflows.load_flow` imports lrsflows.loading, and so torch, on first use.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("lrsflows")  # one source: pyproject.toml's version, as installed
except _metadata.PackageNotFoundError:  # the source tree on sys.path without any install
    __version__ = "0+unknown"

__all__ = ["__version__", "load_flow"]


def __getattr__(name: str):
    if name == "load_flow":
        from .loading import load_flow

        globals()["load_flow"] = load_flow  # looked up once
        return load_flow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"load_flow"})
