"""Unpickle dataset files from the data root without letting a file run code.

A pickle calls whatever module-level callables it names, so a crafted file can run any code the
moment it is loaded. The readers here resolve only the names a dataset's real files need, listed
per dataset; a file that names anything else is refused before that name is even imported.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from .errors import DataError

# What a pickled numpy array needs: the reconstructor (numpy 1 or numpy 2 module name), the array and
# dtype classes, and `_codecs.encode`, the form in which Python 3 writes bytes (keys, pixels) in protocol 2.
NUMPY_ARRAY = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a callable outside the allowlist; `name` is its module.name."""

    def __init__(self, name: str):
        super().__init__(f"refused to resolve {name}")
        self.name = name

    def data_error(self, path: Path, what: str, advice: str) -> DataError:
        """The sentence for the user: which file asked for what, that it was not loaded, and `advice`."""
        return DataError(
            f"{path} asks the unpickler for {self.name}, which no {what} needs, so it was not loaded (the file may be "
            f"malicious); {advice}"
        )


class AllowlistUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only the (module, name) pairs in `allowed`."""

    def __init__(self, file, allowed: frozenset[tuple[str, str]], **options):
        super().__init__(file, **options)
        self.allowed = allowed

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise RefusedGlobal(f"{module}.{name}")
        return super().find_class(module, name)


def load(path: Path, allowed: frozenset[tuple[str, str]], **options) -> object:
    """The object pickled in `path`; RefusedGlobal if it names anything outside `allowed` (options: encoding...)."""
    with open(path, "rb") as handle:
        return AllowlistUnpickler(handle, allowed, **options).load()
