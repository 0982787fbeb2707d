"""The five MAF tabular datasets: read the reference files, preprocess exactly as MAF/NSF, cache the splits.

File layouts and recipes follow docs/datasets.md §Tabular. Each preprocessing step is a pure
function on arrays or frames, so tests can compare it with an independent re-computation; the
loader around them only finds, reads, validates and caches files.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..errors import WriteError
from ..files import write_atomically
from . import pickles
from .errors import DataError
from .specs import DatasetSpec, dataset_names, dataset_spec

DATA_DIR_ENV = "LRSFLOWS_DATA_DIR"
SPLITS = ("train", "val", "test")
POWER_COLUMNS = 8
GAS_DROPPED = ("Meth", "Eth", "Time")
GAS_COLUMNS = len(GAS_DROPPED) + 16
GAS_CORRELATION_LIMIT = 0.98
HEPMASS_TRAIN_COLUMNS = 1 + 27
HEPMASS_TEST_COLUMNS = HEPMASS_TRAIN_COLUMNS + 1
HEPMASS_MAX_MINIMUM_REPEATS = 5
BSDS300_KEYS = ("train", "validation", "test")
REDOWNLOAD = "delete it and re-download it with `make data`."
CACHE_RECORD = "splits.json"
BSDS300 = dataset_spec("bsds300")
# What a pickled DataFrame of numbers with named columns needs, as pandas 2 and pandas 3 write it (names checked
# with pandas 2.2 / numpy 1.26 and pandas 3.1 / numpy 2.4): numpy arrays (protocol 5 adds _frombuffer), pandas'
# frame, block manager and index classes, and builtins.slice for block placements.
GAS_PICKLE_GLOBALS = pickles.NUMPY_ARRAY | {
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "slice"),
    ("__builtin__", "slice"),
    ("pandas.core.frame", "DataFrame"),
    ("pandas", "DataFrame"),
    ("pandas.core.internals.managers", "BlockManager"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.base", "Index"),
    ("pandas", "Index"),
    ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas", "RangeIndex"),
    ("pandas", "StringDtype"),
    ("pandas.arrays", "StringArray"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
}

Splits = tuple[np.ndarray, np.ndarray, np.ndarray]


def resolve_data_dir(configured: str | Path | None = None) -> Path:
    """The data root: `configured` if given, else $LRSFLOWS_DATA_DIR, else ./data; absolute so messages name a full path."""
    chosen = configured if configured not in (None, "") else os.environ.get(DATA_DIR_ENV) or "data"
    return Path(chosen).expanduser().absolute()


# ----------------------------------------------------------------------------------------------
# Preprocessing: pure functions, the MAF/NSF recipes step by step.


def split_maf(data: np.ndarray) -> Splits:
    """MAF's split: test = last int(0.1 N) rows, validation = last int(0.1 N_rest) rows of the rest.

    Slicing by explicit lengths differs from MAF's `data[-n:]` only for N < 10, where n = 0 makes
    MAF's test set the whole data.
    """
    n_test = int(0.1 * data.shape[0])
    rest, test = data[: data.shape[0] - n_test], data[data.shape[0] - n_test :]
    n_val = int(0.1 * rest.shape[0])
    return rest[: rest.shape[0] - n_val], rest[rest.shape[0] - n_val :], test


def standardise_with_train_and_val(splits: Splits) -> Splits:
    """POWER and MINIBOONE statistics: NumPy mean and std (ddof=0) of train and validation stacked."""
    reference = np.vstack(splits[:2])
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    return tuple((split - mean) / std for split in splits)


def preprocess_power(raw: np.ndarray) -> Splits:
    """MAF/NSF POWER: seeded shuffle, drop reactive power and intensity, add the reference noise, split, standardise."""
    rng = np.random.RandomState(42)
    data = np.array(raw, dtype=np.float64)  # a copy: the shuffle works in place
    rng.shuffle(data)
    data = np.delete(data, 3, axis=1)  # Global_intensity
    data = np.delete(data, 1, axis=1)  # Global_reactive_power -> active, voltage, sub1..3, time
    rows = data.shape[0]
    # The reference draws voltage noise before active-power noise; the draw order fixes the values.
    voltage_noise = 0.01 * rng.rand(rows, 1)
    active_noise = 0.001 * rng.rand(rows, 1)
    sub_metering_noise = rng.rand(rows, 3)
    time_noise = np.zeros((rows, 1))
    data = data + np.hstack((active_noise, voltage_noise, sub_metering_noise, time_noise))
    return standardise_with_train_and_val(split_maf(data))


def drop_correlated_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """GAS: while some column has another with Pearson correlation > 0.98, drop the first such column."""
    while True:
        crowded = np.flatnonzero((frame.corr() > GAS_CORRELATION_LIMIT).to_numpy().sum(axis=1) > 1)
        if crowded.size == 0:
            return frame
        frame = frame.iloc[:, np.arange(frame.shape[1]) != crowded[0]]


def preprocess_gas(frame: pd.DataFrame) -> Splits:
    """MAF/NSF GAS: sensors only, correlated ones dropped, standardised on the whole data (pandas, ddof=1), split."""
    sensors = drop_correlated_columns(frame.drop(columns=list(GAS_DROPPED)))
    standardised = (sensors - sensors.mean()) / sensors.std()
    return split_maf(standardised.to_numpy(dtype=np.float64))


def hepmass_features(
    train_frame: pd.DataFrame, test_frame: pd.DataFrame, source: str = "the HEPMASS files"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Signal rows without the label, the test file's extra last column dropped, test columns in train order.

    The reference subtracts the train mean from the test frame by pandas label alignment, which
    sorts the union of the column names when they differ and so silently permutes test features;
    we match columns by name and refuse files whose names differ.
    """
    train = train_frame[train_frame.iloc[:, 0] == 1].iloc[:, 1:]
    test = test_frame[test_frame.iloc[:, 0] == 1].iloc[:, 1:-1]
    if set(train.columns) != set(test.columns):
        only_train = sorted(set(train.columns) - set(test.columns))
        only_test = sorted(set(test.columns) - set(train.columns))
        raise DataError(
            f"{source} do not have the same feature columns (only in train: {only_train}, only in test: "
            f"{only_test}); delete both and re-download them with `make data`."
        )
    return train, test[list(train.columns)]


def has_repeated_minimum(data: np.ndarray) -> np.ndarray:
    """Per column: does its smallest value occur more than 5 times (HEPMASS's rule for discrete features)?"""
    return (data == data.min(axis=0)).sum(axis=0) > HEPMASS_MAX_MINIMUM_REPEATS


def preprocess_hepmass(
    train_frame: pd.DataFrame, test_frame: pd.DataFrame, source: str = "the HEPMASS files"
) -> Splits:
    """MAF/NSF HEPMASS: signal rows, train statistics (pandas, ddof=1), discrete columns dropped, validation = end of train."""
    train, test = hepmass_features(train_frame, test_frame, source)
    mean, std = train.mean(), train.std()
    train = ((train - mean) / std).to_numpy(dtype=np.float64)
    test = ((test - mean) / std).to_numpy(dtype=np.float64)
    keep = ~has_repeated_minimum(train)
    train, test = train[:, keep], test[:, keep]
    n_val = int(0.1 * train.shape[0])
    return train[: train.shape[0] - n_val], train[train.shape[0] - n_val :], test


def preprocess_miniboone(raw: np.ndarray) -> Splits:
    """MAF/NSF MINIBOONE: split without shuffling, standardise with train+validation statistics."""
    return standardise_with_train_and_val(split_maf(np.asarray(raw, dtype=np.float64)))


# ----------------------------------------------------------------------------------------------
# Loading: find the files, read and validate them, cache the processed splits.


def load_tabular(name: str, data_dir: str | Path) -> Splits:
    """Train, validation and test of one MAF dataset as float32 C-contiguous arrays; DataError on anything wrong."""
    if name not in dataset_names("tabular"):
        raise DataError(f"unknown tabular dataset {name!r}; choose one of {', '.join(dataset_names('tabular'))}.")
    spec, root = dataset_spec(name), Path(data_dir).expanduser().absolute()
    splits = _cached_or_preprocessed(spec, root) if spec.cached else _read_uncached(spec, root)
    return tuple(np.ascontiguousarray(split, dtype=np.float32) for split in splits)


def missing_datasets(data_dir: str | Path) -> dict[str, str]:
    """Datasets whose files are absent from `data_dir`, each with the file(s) it needs: a check before long sweeps."""
    root = Path(data_dir).expanduser().absolute()
    missing = {}
    for spec in map(dataset_spec, dataset_names("tabular")):
        cached = spec.cached and all((root / spec.name / f"{split}.npy").is_file() for split in SPLITS)
        if not cached and _raw_files(spec, root) is None:
            missing[spec.name] = " or ".join(" + ".join(files) for files in spec.sources)
    return missing


def _cached_or_preprocessed(spec: DatasetSpec, root: Path) -> Splits:
    """The cached splits if they were made from the raw files now present, else preprocess, check and cache.

    With no raw files at all the split files are used as they are: NSF's own, or our cache of a raw file
    since deleted. A cache without the record beside it (an older version's) is rebuilt like a stale one.
    """
    folder = root / spec.name
    paths = [folder / f"{split}.npy" for split in SPLITS]
    raw = _raw_files(spec, root)
    raw_stamps = None if raw is None else _stamps(raw)  # before reading, so a raw file replaced meanwhile is seen
    if all(path.is_file() for path in paths) and (raw is None or _read_record(folder) == _record(raw_stamps, paths)):
        splits = tuple(_read_npy(path, spec.features) for path in paths)
        _check_published_sizes(spec, splits, f"the split files {folder}/{{train,val,test}}.npy")
        return splits
    if raw is None:
        expected = next(path for path in spec.sources[-1] if not (root / path).is_file())
        raise _missing(root / expected, spec.title)
    with np.errstate(all="ignore"):  # a division by zero or an overflow shows up in the output, checked next
        splits = PREPROCESSORS[spec.name](raw)
    source = " and ".join(str(path) for path in raw)
    _check_processed(splits, source)
    _check_features(spec, splits, source)
    _check_published_sizes(spec, splits, source)
    _write_cache(paths, splits, raw_stamps)
    return splits


def _read_uncached(spec: DatasetSpec, root: Path) -> Splits:
    """The splits a file holds as they are (BSDS300): read each time, as there is no preprocessing to save."""
    raw = _raw_files(spec, root)
    if raw is None:
        spellings = "".join(f" (or NSF's spelling {root / files[0]})" for files in spec.sources[1:])
        raise _missing(root / spec.sources[0][0], spec.title, spellings)
    splits = PREPROCESSORS[spec.name](raw)
    _check_published_sizes(spec, splits, " and ".join(str(path) for path in raw))
    return splits


def _raw_files(spec: DatasetSpec, root: Path) -> tuple[Path, ...] | None:
    """The first of the spec's source alternatives whose files all exist under `root`, or None."""
    alternatives = (tuple(root / path for path in files) for files in spec.sources)
    return next((paths for paths in alternatives if all(path.is_file() for path in paths)), None)


def _hepmass(raw: tuple[Path, ...]) -> Splits:
    train_path, test_path = raw
    train = _read_csv(train_path, HEPMASS_TRAIN_COLUMNS, "label and 27 features")
    test = _read_csv(test_path, HEPMASS_TEST_COLUMNS, "label, 27 features and the test file's extra last column")
    return preprocess_hepmass(train, test, f"{train_path} and {test_path}")


def _missing(path: Path, label: str, alternative: str = "") -> DataError:
    """The error that tells the user where the file belongs and how to get it."""
    return DataError(
        f"{label} data not found: expected {path}{alternative}; run `make data` (downloads the MAF archive from "
        f"Zenodo) or point paths.data_dir / LRSFLOWS_DATA_DIR at the folder that holds {path.parent.name}/{path.name}."
    )


def _read_npy(path: Path, columns: int) -> np.ndarray:
    """A 2-D numeric .npy of the expected width with finite values (never unpickles)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path} is not a readable NumPy array ({error}); {REDOWNLOAD}") from None
    if array.dtype.kind not in "fiu":
        raise DataError(f"{path} holds {array.dtype} values instead of numbers; {REDOWNLOAD}")
    _check_columns(array, columns, str(path))
    _require_finite(array, str(path))
    return array


def _read_csv(path: Path, columns: int, layout: str) -> pd.DataFrame:
    """A numeric CSV frame with one header line and exactly `columns` columns (layout says which)."""
    try:
        frame = pd.read_csv(path, index_col=False)
    except (ValueError, OSError) as error:
        raise DataError(f"{path} cannot be read as CSV ({error}); {REDOWNLOAD}") from None
    if frame.shape[1] != columns:
        raise DataError(f"{path} has {frame.shape[1]} columns where {columns} ({layout}) are expected; {REDOWNLOAD}")
    text = [column for column in frame.columns if not pd.api.types.is_numeric_dtype(frame[column])]
    if text:
        raise DataError(f"{path} has non-numeric values in columns {text}; {REDOWNLOAD}")
    _require_finite(frame.to_numpy(dtype=np.float64), str(path), row_word="line", row_offset=2)
    return frame


def _read_gas_frame(path: Path) -> pd.DataFrame:
    """The GAS DataFrame from the converted ethylene_CO.npz or from the user's pickle (its spec lists the npz first)."""
    frame = _read_gas_npz(path) if path.suffix == ".npz" else _read_gas_pickle(path)
    missing = [column for column in GAS_DROPPED if column not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks the columns {missing} of the MAF GAS frame; {REDOWNLOAD}")
    _check_columns(frame, GAS_COLUMNS, f"{path} (Time, Meth, Eth and 16 sensors)")
    try:
        frame = frame.astype(np.float64)
    except (ValueError, TypeError) as error:
        raise DataError(f"{path} holds non-numeric values ({error}); {REDOWNLOAD}") from None
    _require_finite(frame.to_numpy(), str(path))
    return frame


def _read_gas_npz(path: Path) -> pd.DataFrame:
    """The neutral form written by scripts/convert_gas_pickle.py: `values` (N, 19) and `columns` names."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return pd.DataFrame(arrays["values"], columns=[str(name) for name in arrays["columns"]])
    except (ValueError, OSError, EOFError, KeyError) as error:
        raise DataError(
            f"{path} is not a readable converted GAS file ({error}); delete it and convert the pickle again "
            "with scripts/convert_gas_pickle.py."
        ) from None


def _read_gas_pickle(path: Path) -> pd.DataFrame:
    """The user's GAS pickle, unpickled resolving only GAS_PICKLE_GLOBALS; the 2017 one needs the converter.

    A refused name outside pandas and numpy cannot come from any pandas version, so that file is called
    possibly malicious and the converter, which unpickles without restriction, is not suggested for it.
    """
    try:
        frame = pickles.load(path, GAS_PICKLE_GLOBALS)
    except pickles.RefusedGlobal as error:
        if error.name.startswith(("pandas.", "numpy.")):
            reason = f"it names {error.name}, which no pandas 2 or 3 frame of numbers needs"
            raise _gas_conversion_needed(path, reason) from None
        raise error.data_error(path, "GAS DataFrame", REDOWNLOAD) from None
    except Exception as error:  # old-pandas pickles fail with many different exception types
        raise _gas_conversion_needed(path, f"{type(error).__name__}: {error}") from None
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{path} holds a {type(frame).__name__}, not the MAF GAS DataFrame; {REDOWNLOAD}")
    return frame


def _gas_conversion_needed(path: Path, reason: str) -> DataError:
    """The pickle is (most likely) MAF's 2017 one: how to convert it, with the MD5-checked copy the converter needs."""
    return DataError(
        f"{path} cannot be read with pandas {pd.__version__} ({reason}), most likely because the MAF authors wrote "
        "it with the pandas of 2017; convert that file (only a copy from `make data`, which checks its MD5, because the "
        "converter unpickles without restriction) once, from the repository root, in a throwaway environment with "
        "Python 3.8-3.11: "
        "`python3 -m venv /tmp/gasconv && /tmp/gasconv/bin/pip install 'pandas==1.5.3' 'numpy<2' && "
        f"/tmp/gasconv/bin/python scripts/convert_gas_pickle.py {path}`, which writes {path.with_suffix('.npz')} "
        "that this loader then reads."
    )


def _read_bsds300(raw: tuple[Path, ...]) -> Splits:
    """BSDS300's three HDF5 datasets as they are (no preprocessing), under MAF's or NSF's file name."""
    path = raw[0]
    try:
        with h5py.File(path, "r") as file:
            splits = tuple(_read_hdf5_table(file, key, path) for key in BSDS300_KEYS)
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise DataError(
            f"{path} is not a readable HDF5 file with datasets train, validation and test ({error}); {REDOWNLOAD}"
        ) from None
    return splits


def _read_hdf5_table(file: h5py.File, key: str, path: Path) -> np.ndarray:
    """Dataset `key` as float32, its kind, dtype and shape checked before anything is read."""
    entry = file.get(key)
    if not isinstance(entry, h5py.Dataset):
        found = "no entry" if entry is None else f"a {type(entry).__name__.lower()}"  # a group, a datatype
        raise DataError(
            f"{path} has {found} named {key!r} where BSDS300's {key} dataset (a table of "
            f"{BSDS300.features} numbers per row) is expected; {REDOWNLOAD}"
        )
    source = f"{path} (dataset {key})"
    if entry.dtype.kind not in "fiu":
        raise DataError(f"{source} holds {entry.dtype} values instead of numbers; {REDOWNLOAD}")
    _check_columns(entry, BSDS300.features, source)
    with np.errstate(over="ignore"):  # a value beyond float32's range becomes Inf, which _require_finite reports
        table = entry[()].astype(np.float32)
    _require_finite(table, source)
    return table


def _check_columns(table: np.ndarray | pd.DataFrame, expected: int, source: str) -> None:
    if table.ndim != 2:
        raise DataError(
            f"{source} holds a {table.ndim}-D array where a table of {expected} columns is expected; {REDOWNLOAD}"
        )
    if table.shape[1] != expected:
        raise DataError(f"{source} has {table.shape[1]} columns where {expected} are expected; {REDOWNLOAD}")


def _require_finite(values: np.ndarray, source: str, row_word: str = "row", row_offset: int = 0) -> None:
    """Refuse NaN/Inf rows, saying how many and where the first is, so the user can look."""
    bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad_rows.size:
        raise DataError(
            f"{source} has {bad_rows.size} rows with NaN or Inf values (the first at {row_word} "
            f"{bad_rows[0] + row_offset}); {REDOWNLOAD}"
        )


def _check_processed(splits: Splits, source: str) -> None:
    """Refuse, before caching, preprocessed splits no flow can fit: an empty split, NaN or Inf (a constant raw
    column divided by its zero deviation, an overflowing mean), a column constant over the training rows."""
    for split_name, split in zip(SPLITS, splits):
        if split.shape[0] == 0:
            raise DataError(f"preprocessing {source} leaves the {split_name} split empty (too few rows); {REDOWNLOAD}")
        bad = np.flatnonzero(~np.isfinite(split).all(axis=0))
        if bad.size:
            raise DataError(
                f"preprocessing {source} gives NaN or Inf values in column {bad[0]} of the {split_name} split (from "
                f"a constant column, or values near 1e308 whose mean or variance overflows); {REDOWNLOAD}"
            )
    constant = np.flatnonzero(np.ptp(splits[0], axis=0) == 0)
    if constant.size:
        raise DataError(
            f"preprocessing {source} gives column {constant[0]} the same value in every training row, which no "
            f"density can fit (from a column constant over those rows, or a value near 1e308 whose square "
            f"overflows the variance); {REDOWNLOAD}"
        )


def _check_features(spec: DatasetSpec, splits: Splits, source: str) -> None:
    """GAS and HEPMASS keep a data-dependent number of columns; the MAF files give exactly spec.features."""
    got = splits[0].shape[1]
    if got != spec.features:
        raise DataError(
            f"preprocessing {source} keeps {got} features where the MAF {spec.title} data gives {spec.features}; "
            f"it is not the MAF file, so {REDOWNLOAD}"
        )


def _check_published_sizes(spec: DatasetSpec, splits: Splits, source: str) -> None:
    """With the full data (as many rows as the published splits together) the split sizes must be the published ones."""
    sizes = tuple(split.shape[0] for split in splits)
    published = spec.splits
    if sum(sizes) == sum(published) and sizes != published:
        raise DataError(
            f"{source} gives {spec.title} train/val/test sizes {sizes} where the published MAF splits are "
            f"{published}; delete the files named here and run `make data` again."
        )


def _stamps(paths: tuple[Path, ...] | list[Path]) -> dict[str, list[int]]:
    """Each file's [size, mtime_ns] by name: what the cache record compares.

    Size and modification time rather than a hash: they cost one stat, where hashing the raw files
    (hundreds of MB for POWER and HEPMASS) would cost seconds on every run, about what the cache saves;
    any download, copy or edit changes the time, as it does for make and Python's bytecode cache.
    """
    return {path.name: [path.stat().st_size, path.stat().st_mtime_ns] for path in paths}


def _record(raw_stamps: dict[str, list[int]], paths: list[Path]) -> dict:
    """What vouches for a cache: the stamps of the raw files it came from and of the split files as written."""
    return {"raw": raw_stamps, "splits": _stamps(paths)}


def _read_record(folder: Path) -> dict | None:
    """The cache record in `folder`, or None when it is missing or unreadable (the cache is then rebuilt)."""
    try:
        return json.loads((folder / CACHE_RECORD).read_text())
    except (OSError, ValueError):
        return None


def _write_cache(paths: list[Path], splits: Splits, raw_stamps: dict[str, list[int]]) -> None:
    """Save the splits in NSF's layout, then the record of where they came from; a read-only or full disk only
    costs the cache, not the run.

    Each file is replaced atomically and the record, written last, names the split files' own stamps too, so a
    cache that a crash or another process left half-replaced does not match its record and is rebuilt. Stored as
    float64 like NSF's save_splits, so our cache and NSF's split files are interchangeable (the loader casts to
    float32 on reading either).
    """
    try:
        for path, split in zip(paths, splits):
            write_atomically(path, lambda handle, split=split: np.save(handle, np.asarray(split, dtype=np.float64)))
        record = json.dumps(_record(raw_stamps, paths)).encode()
        write_atomically(paths[0].parent / CACHE_RECORD, lambda handle: handle.write(record))
    except WriteError as error:
        reason = error.__cause__  # the OSError itself, which this warning names
        message = (
            f"could not cache the processed splits in {paths[0].parent} ({reason}); they will be recomputed next time."
        )
        warnings.warn(message, stacklevel=3)


# How each tabular dataset's raw files (the spec's first complete source) become its three splits.
PREPROCESSORS: dict[str, Callable[[tuple[Path, ...]], Splits]] = {
    "power": lambda raw: preprocess_power(_read_npy(raw[0], POWER_COLUMNS)),
    "gas": lambda raw: preprocess_gas(_read_gas_frame(raw[0])),
    "hepmass": _hepmass,
    "miniboone": lambda raw: preprocess_miniboone(_read_npy(raw[0], dataset_spec("miniboone").features)),
    "bsds300": _read_bsds300,
}
