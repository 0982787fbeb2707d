"""The MAF tabular loaders on small files in the exact reference formats, generated here, plus real MINIBOONE rows.

Reference re-computations below are written straight from docs/datasets.md §Tabular, independently
of lrsflows.data.tabular, so a shared mistake would have to be made twice.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from lrsflows.data.errors import DataError
from lrsflows.data.specs import dataset_spec
from lrsflows.data.tabular import (
    drop_correlated_columns,
    load_tabular,
    missing_datasets,
    preprocess_gas,
    preprocess_hepmass,
    preprocess_miniboone,
    preprocess_power,
    resolve_data_dir,
)

REPO = Path(__file__).resolve().parents[1]
REAL_SAMPLES = Path(os.environ.get("LRSFLOWS_REAL_SAMPLES", REPO.parent / "shared" / "data"))
HEPMASS_DISCRETE = (4, 9, 13, 17, 22, 26)  # feature indices whose smallest value repeats > 5 times


def maf_split(data):
    n_test = int(0.1 * len(data))
    rest, test = data[:-n_test], data[-n_test:]
    n_val = int(0.1 * len(rest))
    return rest[:-n_val], rest[-n_val:], test


def split_sizes(rows):
    test = int(0.1 * rows)
    val = int(0.1 * (rows - test))
    return rows - test - val, val, test


def shapes(splits):
    return tuple(split.shape for split in splits)


# ---------------------------------------------------------------------------------------------- fixtures


def make_power(root, rows=200):
    """UCI column order: active, reactive, voltage, intensity, sub1..3, minutes of the day."""
    rng = np.random.default_rng(1)
    raw = np.column_stack(
        [
            rng.gamma(2.0, 0.5, rows),
            rng.gamma(1.0, 0.1, rows),
            rng.normal(240.0, 3.0, rows),
            rng.gamma(2.0, 2.0, rows),
            rng.integers(0, 40, (rows, 3)).astype(np.float64),
            rng.integers(0, 1440, rows).astype(np.float64),
        ]
    )
    (root / "power").mkdir(parents=True)
    np.save(root / "power" / "data.npy", raw)
    (root / "power" / "._data.npy").write_bytes(b"\x00\x05\x16\x07Mac OS X".ljust(4096, b"\x00"))
    return raw


def make_gas_frame(rows=300):
    """16 sensors in 8 groups of near-copies (corr > 0.98): one of a group of 3 and one of each pair survive."""
    rng = np.random.default_rng(2)
    base = rng.normal(size=(rows, 8)) * rng.uniform(1, 5, 8) + rng.uniform(-3, 3, 8)
    group_of_column = [0, 1, 2, 0, 3, 4, 5, 6, 7, 2, 3, 0, 4, 5, 6, 7]  # group 0 thrice, group 1 once
    sensors = base[:, group_of_column] + 0.01 * rng.normal(size=(rows, 16))
    frame = pd.DataFrame(sensors, columns=[f"R{i + 1}" for i in range(16)])
    frame.insert(0, "Eth", rng.uniform(0, 20, rows))
    frame.insert(0, "Meth", rng.uniform(0, 600, rows))
    frame.insert(0, "Time", np.sort(rng.uniform(0, 40000, rows)))
    return frame


GAS_SURVIVORS = ["R2", "R10", "R11", "R12", "R13", "R14", "R15", "R16"]  # the last member of each group


def write_gas_npz(path, frame):
    np.savez(path, values=frame.to_numpy(np.float64), columns=np.array(list(frame.columns)))


def make_hepmass(root, train_rows=400, test_rows=240, test_columns=None):
    """`# label,f0..f26` CSVs, both labels, six discrete features; the test file has one extra trailing column."""
    rng = np.random.default_rng(3)

    def table(rows):
        features = rng.normal(size=(rows, 27))
        features[:, list(HEPMASS_DISCRETE)] = rng.integers(0, 4, (rows, len(HEPMASS_DISCRETE)))
        return np.column_stack([rng.integers(0, 2, rows).astype(np.float64), features])

    names = ["# label"] + [f"f{i}" for i in range(27)]
    train, test = table(train_rows), np.column_stack([table(test_rows), rng.uniform(500, 1500, test_rows)])
    (root / "hepmass").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(train, columns=names).to_csv(root / "hepmass" / "1000_train.csv", index=False)
    pd.DataFrame(test, columns=test_columns or names + ["mass"]).to_csv(root / "hepmass" / "1000_test.csv", index=False)
    return train, test


def make_miniboone(root, rows=250, columns=43):
    raw = np.random.default_rng(4).normal(size=(rows, columns)) * np.arange(1, columns + 1) + 7.0
    (root / "miniboone").mkdir(parents=True, exist_ok=True)
    np.save(root / "miniboone" / "data.npy", raw)
    return raw


def make_bsds300(root, relative):
    rng = np.random.default_rng(5)
    arrays = {
        "train": rng.normal(size=(50, 63)),
        "validation": rng.normal(size=(10, 63)),
        "test": rng.normal(size=(20, 63)),
    }
    (root / relative).parent.mkdir(parents=True)
    with h5py.File(root / relative, "w") as file:
        for key, array in arrays.items():
            file.create_dataset(key, data=array)
    return arrays


# ---------------------------------------------------------------------------------------------- POWER


def reference_power(raw, voltage_noise_first=True):
    """docs/datasets.md §Tabular step by step (voltage_noise_first=False: the draws in column order, for contrast)."""
    rng = np.random.RandomState(42)
    data = raw.copy()
    rng.shuffle(data)
    data = np.delete(np.delete(data, 3, axis=1), 1, axis=1)
    n = data.shape[0]
    if voltage_noise_first:
        voltage, active = 0.01 * rng.rand(n, 1), 0.001 * rng.rand(n, 1)
    else:
        active, voltage = 0.001 * rng.rand(n, 1), 0.01 * rng.rand(n, 1)
    sub = rng.rand(n, 3)
    data = data + np.hstack((active, voltage, sub, np.zeros((n, 1))))
    train, val, test = maf_split(data)
    both = np.vstack((train, val))
    return tuple((split - both.mean(axis=0)) / both.std(axis=0) for split in (train, val, test))


def test_power_follows_the_documented_recipe_and_rng_order(tmp_path):
    raw = make_power(tmp_path)
    kept = raw.copy()
    computed = preprocess_power(raw)
    np.testing.assert_array_equal(raw, kept)  # the caller's array is not shuffled in place
    for ours, theirs in zip(computed, reference_power(raw)):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    column_order = reference_power(raw, voltage_noise_first=False)
    assert not np.allclose(computed[0][:, :2], column_order[0][:, :2], rtol=0, atol=1e-6)
    for ours, again in zip(computed, preprocess_power(raw)):
        np.testing.assert_array_equal(ours, again)


def test_power_loader_gives_standardised_float32_splits_of_the_formula_sizes(tmp_path):
    make_power(tmp_path)
    loaded = load_tabular("power", tmp_path)
    assert shapes(loaded) == tuple((rows, 6) for rows in split_sizes(200))
    for split in loaded:
        assert split.dtype == np.float32 and split.flags.c_contiguous
    both = np.vstack(loaded[:2]).astype(np.float64)
    np.testing.assert_allclose(both.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(both.std(axis=0), 1, atol=1e-6)
    assert abs(loaded[2].mean()) > 1e-4  # test is standardised with train+val statistics, not its own


def cache_stamps(folder):
    """The cache's files (split files and record) by name, each with its modification time."""
    return {path.name: path.stat().st_mtime_ns for path in folder.glob("*") if path.name in CACHE_FILES}


CACHE_FILES = ("train.npy", "val.npy", "test.npy", "splits.json")


def test_cache_is_written_in_nsf_layout_with_its_record_and_reused(tmp_path):
    make_power(tmp_path)
    first = load_tabular("power", tmp_path)
    folder = tmp_path / "power"
    stamps = cache_stamps(folder)
    assert sorted(stamps) == sorted(CACHE_FILES)
    for name, split in zip(CACHE_FILES, first):
        stored = np.load(folder / name)
        assert stored.dtype == np.float64  # NSF's dtype, so NSF can read our cache and we theirs
        np.testing.assert_array_equal(stored.astype(np.float32), split)
    record = json.loads((folder / "splits.json").read_text())
    raw = (folder / "data.npy").stat()
    assert record["raw"] == {"data.npy": [raw.st_size, raw.st_mtime_ns]}
    assert sorted(record["splits"]) == ["test.npy", "train.npy", "val.npy"]
    assert not list(folder.glob("*.tmp"))
    for _ in range(2):  # with the raw file (the record matches) and without it (nothing to preprocess)
        again = load_tabular("power", tmp_path)
        assert cache_stamps(folder) == stamps
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)
        (folder / "data.npy").unlink(missing_ok=True)


def test_a_changed_raw_file_or_a_cache_without_its_record_is_rebuilt(tmp_path):
    raw = make_miniboone(tmp_path)
    folder = tmp_path / "miniboone"
    load_tabular("miniboone", tmp_path)
    changed = raw * 2 + 1
    np.save(folder / "data.npy", changed)
    for ours, theirs in zip(load_tabular("miniboone", tmp_path), preprocess_miniboone(changed)):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # An older version's cache: no record, and poisoned (NaN) by a bad raw file since fixed.
    (folder / "splits.json").unlink()
    for name in ("train.npy", "val.npy", "test.npy"):
        np.save(folder / name, np.full((5, 43), np.nan))
    for ours, theirs in zip(load_tabular("miniboone", tmp_path), preprocess_miniboone(changed)):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # A split file replaced after the record was written (a crash or another writer): not trusted either.
    np.save(folder / "val.npy", np.zeros((5, 43)))
    assert len(load_tabular("miniboone", tmp_path)[1]) == split_sizes(250)[1]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda raw: raw.__setitem__((slice(None), 5), 3.0),
            r"data.npy gives NaN or Inf values in column 5 of the train",
        ),
        (
            lambda raw: raw.__setitem__(([0, 1], 7), 1.7e308),
            r"data.npy gives NaN or Inf values in column 7",
        ),  # mean overflows
        (lambda raw: raw.__setitem__((0, 7), 1.7e308), r"data.npy gives column 7 the same value in every training row"),
        (
            lambda raw: raw.__setitem__((slice(0, split_sizes(250)[0]), 9), 1.0),  # varies in validation and test only
            r"data.npy gives column 9 the same value in every training row",
        ),
        (lambda raw: raw.resize((10, 43), refcheck=False), r"data.npy leaves the val split empty \(too few rows\)"),
    ],
)
def test_bad_raw_data_is_named_and_never_cached(tmp_path, damage, message):
    raw = make_miniboone(tmp_path)
    damage(raw)
    path = tmp_path / "miniboone" / "data.npy"
    np.save(path, raw)
    with pytest.raises(DataError, match=message) as error:
        load_tabular("miniboone", tmp_path)
    assert str(error.value).startswith(f"preprocessing {path} ") and str(error.value).endswith(
        "delete it and re-download it with `make data`."
    )
    assert sorted(item.name for item in path.parent.iterdir()) == ["data.npy"]


# ---------------------------------------------------------------------------------------------- GAS


def reference_gas(frame):
    """docs/datasets.md §Tabular with NumPy: Pearson correlation, drop the first crowded column, recompute."""
    data = frame.drop(columns=["Meth", "Eth", "Time"])
    names, values = list(data.columns), data.to_numpy()
    while True:
        counts = (np.corrcoef(values, rowvar=False) > 0.98).sum(axis=1)
        if not (counts > 1).any():
            break
        first = int(np.flatnonzero(counts > 1)[0])
        names.pop(first)
        values = np.delete(values, first, axis=1)
    values = (values - values.mean(axis=0)) / values.std(axis=0, ddof=1)
    return names, maf_split(values)


def test_gas_correlation_loop_keeps_eight_sensors_and_standardises_on_all_rows():
    frame = make_gas_frame()
    names, expected = reference_gas(frame)
    assert names == GAS_SURVIVORS
    assert list(drop_correlated_columns(frame.drop(columns=["Meth", "Eth", "Time"])).columns) == GAS_SURVIVORS
    computed = preprocess_gas(frame)
    assert shapes(computed) == tuple((rows, 8) for rows in split_sizes(300))
    for ours, theirs in zip(computed, expected):
        np.testing.assert_allclose(ours, theirs, atol=1e-10)
    whole = np.vstack(computed)
    np.testing.assert_allclose(whole.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(whole.std(axis=0, ddof=1), 1, atol=1e-10)


def test_gas_pickle_and_converted_npz_give_the_same_splits(tmp_path):
    frame = make_gas_frame()
    pickled, converted = tmp_path / "a" / "gas", tmp_path / "b" / "gas"
    pickled.mkdir(parents=True)
    converted.mkdir(parents=True)
    frame.to_pickle(pickled / "ethylene_CO.pickle")
    write_gas_npz(converted / "ethylene_CO.npz", frame)
    (converted / "ethylene_CO.pickle").write_bytes(b"an unreadable 2017 pickle")  # the npz wins over it
    expected = preprocess_gas(frame)
    for root in (tmp_path / "a", tmp_path / "b"):
        for ours, theirs in zip(load_tabular("gas", root), expected):
            np.testing.assert_allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"\x80\x02cpandas.core.frame\nDataFrame\nq\x00)", "(EOFError: Ran out of input)"),
        # pandas 0.2x's module for the block manager: refused before import, as no pandas 2 or 3 writes it
        (
            b"\x80\x02cpandas.core.internals\nBlockManager\nq\x00)\x81.",
            "(it names pandas.core.internals.BlockManager, ",
        ),
    ],
)
def test_unreadable_gas_pickle_points_to_the_converter(tmp_path, blob, reason):
    (tmp_path / "gas").mkdir()
    pickle = tmp_path / "gas" / "ethylene_CO.pickle"
    pickle.write_bytes(blob)
    with pytest.raises(DataError) as error:
        load_tabular("gas", tmp_path)
    message = str(error.value)
    assert message.startswith(f"{pickle} cannot be read with pandas {pd.__version__} {reason}")
    assert "'pandas==1.5.3' 'numpy<2'" in message and "only a copy from `make data`" in message
    assert f"scripts/convert_gas_pickle.py {pickle}" in message and "ethylene_CO.npz" in message


def test_converter_script_writes_the_npz_the_loader_reads(tmp_path):
    frame = make_gas_frame()
    (tmp_path / "gas").mkdir()
    frame.to_pickle(tmp_path / "gas" / "ethylene_CO.pickle")
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "convert_gas_pickle.py"), str(tmp_path / "gas" / "ethylene_CO.pickle")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "gas" / "ethylene_CO.npz", allow_pickle=False) as arrays:
        assert list(arrays["columns"]) == list(frame.columns)
        np.testing.assert_array_equal(arrays["values"], frame.to_numpy())
    assert sorted(path.name for path in (tmp_path / "gas").iterdir()) == ["ethylene_CO.npz", "ethylene_CO.pickle"]
    (tmp_path / "gas" / "ethylene_CO.pickle").unlink()
    for ours, theirs in zip(load_tabular("gas", tmp_path), preprocess_gas(frame)):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


# ---------------------------------------------------------------------------------------------- HEPMASS


def reference_hepmass(train, test):
    """docs/datasets.md §Tabular on the raw tables (label first; the test file's last column is extra)."""
    train = train[train[:, 0] == 1][:, 1:]
    test = test[test[:, 0] == 1][:, 1:-1]
    mean, std = train.mean(axis=0), train.std(axis=0, ddof=1)
    train, test = (train - mean) / std, (test - mean) / std
    keep = np.array([(column == column.min()).sum() <= 5 for column in train.T])
    train, test = train[:, keep], test[:, keep]
    n_val = int(0.1 * len(train))
    return train[:-n_val], train[-n_val:], test


def test_hepmass_keeps_21_features_in_train_order_with_train_statistics(tmp_path):
    train, test = make_hepmass(tmp_path)
    expected = reference_hepmass(train, test)
    positives = int((train[:, 0] == 1).sum())
    assert shapes(expected) == (
        (positives - int(0.1 * positives), 21),
        (int(0.1 * positives), 21),
        ((test[:, 0] == 1).sum(), 21),
    )
    loaded = load_tabular("hepmass", tmp_path)
    assert shapes(loaded) == shapes(expected)
    for ours, theirs in zip(loaded, expected):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    both = np.vstack(loaded[:2]).astype(np.float64)
    np.testing.assert_allclose(both.std(axis=0, ddof=1), 1, atol=1e-5)


def test_hepmass_matches_test_columns_by_name(tmp_path):
    train, test = make_hepmass(tmp_path)
    frame = pd.read_csv(tmp_path / "hepmass" / "1000_test.csv", index_col=False)
    order = [frame.columns[0]] + list(frame.columns[1:-1][::-1]) + [frame.columns[-1]]
    frame[order].to_csv(tmp_path / "hepmass" / "1000_test.csv", index=False)  # same names, reversed order
    for ours, theirs in zip(load_tabular("hepmass", tmp_path), reference_hepmass(train, test)):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_hepmass_with_different_column_names_is_refused_not_resorted(tmp_path):
    names = ["# label"] + [f"f{i}" for i in range(27)] + ["mass"]
    names[4] = "x3"
    make_hepmass(tmp_path, test_columns=names)
    with pytest.raises(DataError, match=r"only in train: \['f3'\], only in test: \['x3'\]") as error:
        load_tabular("hepmass", tmp_path)
    assert str(tmp_path / "hepmass" / "1000_test.csv") in str(error.value)
    train = pd.read_csv(tmp_path / "hepmass" / "1000_train.csv", index_col=False)
    test = pd.read_csv(tmp_path / "hepmass" / "1000_test.csv", index_col=False)
    with pytest.raises(DataError):
        preprocess_hepmass(train, test)


# ---------------------------------------------------------------------------------------------- MINIBOONE, BSDS300


def test_miniboone_split_and_train_val_standardisation(tmp_path):
    raw = make_miniboone(tmp_path)
    train, val, test = maf_split(raw)
    both = np.vstack((train, val))
    expected = [(split - both.mean(axis=0)) / both.std(axis=0) for split in (train, val, test)]
    for ours, theirs in zip(preprocess_miniboone(raw), expected):
        np.testing.assert_allclose(ours, theirs, atol=1e-12)
    loaded = load_tabular("miniboone", tmp_path)
    assert shapes(loaded) == tuple((rows, 43) for rows in split_sizes(250))
    for ours, theirs in zip(loaded, expected):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("relative", ["BSDS300/BSDS300.hdf5", "bsds300/bsds300.hdf5"])
def test_bsds300_is_read_as_stored_under_either_spelling(tmp_path, relative):
    arrays = make_bsds300(tmp_path, relative)
    loaded = load_tabular("bsds300", tmp_path)
    for ours, key in zip(loaded, ("train", "validation", "test")):
        assert ours.dtype == np.float32 and ours.flags.c_contiguous
        np.testing.assert_array_equal(ours, arrays[key].astype(np.float32))
    assert not list((tmp_path / Path(relative).parent).glob("*.npy"))


# ---------------------------------------------------------------------------------------------- real MINIBOONE rows


@pytest.fixture
def real_miniboone():
    folder = REAL_SAMPLES / "miniboone-splits"
    if not (folder / "val.npy").is_file():
        pytest.skip(f"real MINIBOONE splits not found in {folder} (set LRSFLOWS_REAL_SAMPLES)")
    return np.load(folder / "val.npy"), np.load(folder / "test.npy")


def test_real_miniboone_rows_land_in_val_and_test_with_published_sizes(tmp_path, real_miniboone):
    real_val, real_test = real_miniboone
    train_rows = dataset_spec("miniboone").splits[0]
    fake_train = np.random.default_rng(6).normal(size=(train_rows, 43))
    raw = np.vstack((fake_train, real_val, real_test))
    assert raw.shape == (36488, 43)
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", raw)
    train, val, test = load_tabular("miniboone", tmp_path)
    assert (len(train), len(val), len(test)) == dataset_spec("miniboone").splits
    both = np.vstack((fake_train, real_val))
    mean, std = both.mean(axis=0), both.std(axis=0)
    np.testing.assert_allclose(val * std + mean, real_val, atol=1e-5)
    np.testing.assert_allclose(test * std + mean, real_test, atol=1e-5)


def test_real_nsf_split_files_are_used_as_they_are_and_sizes_checked(tmp_path, real_miniboone):
    real_val, real_test = real_miniboone
    folder = tmp_path / "miniboone"
    folder.mkdir()
    np.save(folder / "train.npy", np.random.default_rng(7).normal(size=(dataset_spec("miniboone").splits[0], 43)))
    np.save(folder / "val.npy", real_val)
    np.save(folder / "test.npy", real_test)
    _, val, test = load_tabular("miniboone", tmp_path)
    np.testing.assert_array_equal(val, real_val.astype(np.float32))
    np.testing.assert_array_equal(test, real_test.astype(np.float32))
    np.save(folder / "val.npy", real_test)  # the full row count, split the wrong way round
    np.save(folder / "test.npy", real_val)
    with pytest.raises(
        DataError, match=r"\(29556, 3648, 3284\) where the published MAF splits are \(29556, 3284, 3648\)"
    ):
        load_tabular("miniboone", tmp_path)


# ---------------------------------------------------------------------------------------------- errors and the data root


@pytest.mark.parametrize(
    "name, relative",
    [
        ("power", "power/data.npy"),
        ("gas", "gas/ethylene_CO.pickle"),
        ("hepmass", "hepmass/1000_train.csv"),
        ("miniboone", "miniboone/data.npy"),
        ("bsds300", "BSDS300/BSDS300.hdf5"),
    ],
)
def test_missing_data_names_the_expected_path_and_make_data(tmp_path, name, relative):
    with pytest.raises(DataError) as error:
        load_tabular(name, tmp_path / "nowhere")
    message = str(error.value)
    assert f"expected {tmp_path / 'nowhere' / relative}" in message
    assert "`make data`" in message and "LRSFLOWS_DATA_DIR" in message and "paths.data_dir" in message


def test_only_an_appledouble_file_counts_as_missing(tmp_path):
    (tmp_path / "miniboone").mkdir()
    (tmp_path / "miniboone" / "._data.npy").write_bytes(b"\x00\x05\x16\x07Mac OS X".ljust(4096, b"\x00"))
    with pytest.raises(DataError, match="MINIBOONE data not found"):
        load_tabular("miniboone", tmp_path)


def test_corrupt_npy_is_named_with_the_fix(tmp_path):
    make_miniboone(tmp_path)
    path = tmp_path / "miniboone" / "data.npy"
    path.write_bytes(path.read_bytes()[:5000])  # truncated download
    with pytest.raises(DataError, match="is not a readable NumPy array") as error:
        load_tabular("miniboone", tmp_path)
    assert str(path) in str(error.value) and "delete it and re-download" in str(error.value)


def test_nan_rows_are_counted_and_located(tmp_path):
    raw = make_miniboone(tmp_path)
    raw[[7, 30], 2] = np.nan
    raw[31, 0] = np.inf
    np.save(tmp_path / "miniboone" / "data.npy", raw)
    with pytest.raises(DataError, match=r"has 3 rows with NaN or Inf values \(the first at row 7\)"):
        load_tabular("miniboone", tmp_path)


def test_nan_in_a_csv_is_located_by_line(tmp_path):
    make_hepmass(tmp_path)
    path = tmp_path / "hepmass" / "1000_train.csv"
    lines = path.read_text().splitlines()
    lines[5] = ",".join(["nan"] + lines[5].split(",")[1:])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"1000_train.csv has 1 rows with NaN or Inf values \(the first at line 6\)"):
        load_tabular("hepmass", tmp_path)


def test_wrong_column_counts_say_expected_and_got(tmp_path):
    make_miniboone(tmp_path, columns=42)
    with pytest.raises(DataError, match="has 42 columns where 43 are expected"):
        load_tabular("miniboone", tmp_path)
    make_hepmass(tmp_path, test_columns=None)
    path = tmp_path / "hepmass" / "1000_test.csv"
    pd.read_csv(path, index_col=False).iloc[:, :-1].to_csv(path, index=False)  # the extra column missing
    with pytest.raises(DataError, match=r"1000_test.csv has 28 columns where 29 \(label, 27 features"):
        load_tabular("hepmass", tmp_path)


def test_unreadable_hdf5_is_named(tmp_path):
    (tmp_path / "BSDS300").mkdir()
    path = tmp_path / "BSDS300" / "BSDS300.hdf5"
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="is not a readable HDF5 file") as error:
        load_tabular("bsds300", tmp_path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("key", "replace", "message"),
    [
        ("train", lambda file, key: file.create_group(key), r"has a group named 'train' where BSDS300's train dataset"),
        ("validation", lambda file, key: None, r"has no entry named 'validation' where BSDS300's validation dataset"),
        ("test", lambda file, key: file.create_dataset(key, data=np.zeros(63)), r"\(dataset test\) holds a 1-D array"),
        (
            "train",
            lambda file, key: file.create_dataset(key, data=np.zeros((2, 3, 63))),
            r"\(dataset train\) holds a 3-D",
        ),
        (
            "train",
            lambda file, key: file.create_dataset(key, data=np.zeros((4, 62))),
            r"\(dataset train\) has 62 columns",
        ),
        (
            "test",
            lambda file, key: file.create_dataset(key, data=[b"patch"] * 4),
            r"\(dataset test\) holds object values",
        ),
        (
            "train",
            lambda file, key: file.create_dataset(key, data=np.ones((4, 63), bool)),
            r"holds bool values instead",
        ),
        (
            "validation",
            lambda file, key: file.create_dataset(key, data=np.full((4, 63), 1e300)),  # beyond float32
            r"\(dataset validation\) has 4 rows with NaN or Inf values",
        ),
    ],
)
def test_malformed_hdf5_entries_are_named_by_file_and_key(tmp_path, key, replace, message):
    make_bsds300(tmp_path, "bsds300/bsds300.hdf5")
    path = tmp_path / "bsds300" / "bsds300.hdf5"
    with h5py.File(path, "a") as file:
        del file[key]
        replace(file, key)
    with pytest.raises(DataError, match=message) as error:
        load_tabular("bsds300", tmp_path)
    assert str(error.value).startswith(str(path)) and str(error.value).endswith("re-download it with `make data`.")


def test_unknown_dataset_lists_the_choices(tmp_path):
    with pytest.raises(DataError, match="choose one of power, gas, hepmass, miniboone, bsds300"):
        load_tabular("cifar", tmp_path)


def test_data_root_is_argument_then_environment_then_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LRSFLOWS_DATA_DIR", raising=False)
    assert resolve_data_dir(None) == tmp_path / "data"
    monkeypatch.setenv("LRSFLOWS_DATA_DIR", str(tmp_path / "from-env"))
    assert resolve_data_dir(None) == tmp_path / "from-env"
    assert resolve_data_dir("mine") == tmp_path / "mine"


def test_missing_datasets_names_what_each_absent_dataset_needs(tmp_path):
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", np.zeros((40, 43)))
    (tmp_path / "BSDS300").mkdir()
    (tmp_path / "BSDS300" / "BSDS300.hdf5").touch()
    for split in ("train", "val", "test"):
        (tmp_path / "power").mkdir(exist_ok=True)
        np.save(tmp_path / "power" / f"{split}.npy", np.zeros((3, 6)))
    missing = missing_datasets(tmp_path)
    assert set(missing) == {"gas", "hepmass"}
    assert missing["gas"] == "gas/ethylene_CO.npz or gas/ethylene_CO.pickle"
    assert missing["hepmass"] == "hepmass/1000_train.csv + hepmass/1000_test.csv"
