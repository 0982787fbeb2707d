"""Convert the MAF GAS pickle (written by the pandas of 2017) into ethylene_CO.npz beside it, once.

pandas >= 2 cannot read that pickle, so run this in a throwaway environment with Python 3.8-3.11:

    python3 -m venv /tmp/gasconv && /tmp/gasconv/bin/pip install 'pandas==1.5.3' 'numpy<2'
    /tmp/gasconv/bin/python scripts/convert_gas_pickle.py data/gas/ethylene_CO.pickle

The .npz holds `values` (float64, one row per sample, in the pickle's row order) and `columns`
(the column names as str); the GAS loader prefers it to the pickle. Only pandas and numpy are
imported, so this runs without the project installed.
"""

import os
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd


def convert(pickle_path: Path) -> Path:
    """Write `values` and `columns` of the pickled DataFrame to a .npz next to it, atomically."""
    frame = pd.read_pickle(pickle_path)
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{pickle_path} holds a {type(frame).__name__}, not a DataFrame")
    target = pickle_path.with_suffix(".npz")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # umask permissions
    try:
        with open(temporary, "xb") as handle:
            columns = np.array([str(name) for name in frame.columns])
            np.savez(handle, values=frame.to_numpy(dtype=np.float64), columns=columns)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def main(argv: list) -> int:
    if len(argv) != 1:
        print("usage: python scripts/convert_gas_pickle.py PATH/TO/ethylene_CO.pickle", file=sys.stderr)
        return 2
    try:
        target = convert(Path(argv[0]).expanduser().absolute())
    except Exception as error:  # any failure is reported as one line: unpickling raises many types
        reason = f"{type(error).__name__}: {error}"
        print(
            f"could not convert {argv[0]} ({reason}); it needs pandas 1.5.3 and numpy<2 (see this script's top).",
            file=sys.stderr,
        )
        return 1
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
