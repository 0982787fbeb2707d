"""Bad data as a user meets it: the CLI in a real subprocess on a data root of real-format files that are wrong.

Each case must end in one `error:` sentence naming the file that is wrong, exit status 1 and no traceback;
the cache case also checks what is left on disk, and that fixing the raw file is all it takes to train.
"""

import json
import os

import h5py
import numpy as np
from test_cli import lrsflows
from test_image_data import CIFAR_TORCHVISION, images, write_cifar, write_malicious_pickle
from test_tabular_data import make_bsds300, make_miniboone

from lrsflows.data.tabular import preprocess_miniboone

TINY_MINIBOONE = [
    "experiment=paper/miniboone",
    "trainer.max_steps=2",
    "trainer.batch_size=32",
    "model.num_flow_steps=1",
    "model.hidden_features=8",
    "trainer.progress_bar=false",
    "trainer.compile=false",
]
SPLIT_FILES = ("train.npy", "val.npy", "test.npy")
REDOWNLOAD = "delete it and re-download it with `make data`."


def refused(*overrides, data_dir, cwd) -> str:
    """Run the CLI on `data_dir`; check it fails with exactly one `error:` line and no traceback; that line's sentence."""
    completed = lrsflows(*overrides, f"paths.data_dir={data_dir}", cwd=cwd, check=False)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr
    [line] = completed.stderr.splitlines()
    assert line.startswith("error: ")
    assert not list(cwd.rglob("results.json"))
    return line.removeprefix("error: ")


def test_bad_raw_data_is_never_cached_and_fixing_the_raw_file_rebuilds_the_cache(tmp_path):
    root = tmp_path / "data"
    raw = make_miniboone(root)
    folder, path = root / "miniboone", root / "miniboone" / "data.npy"
    constant = raw.copy()
    constant[:, 5] = 3.0
    np.save(path, constant)
    sentence = refused(*TINY_MINIBOONE, data_dir=root, cwd=tmp_path)
    assert sentence.startswith(f"preprocessing {path} gives NaN or Inf values in column 5 of the train split (from a")
    assert sentence.endswith(REDOWNLOAD)
    assert sorted(os.listdir(folder)) == ["data.npy"]

    # An older version's cache poisoned by bad data (no record beside it), and a raw value whose mean overflows.
    for name in SPLIT_FILES:
        np.save(folder / name, np.full((3, 43), np.nan))
    poisoned = {name: (folder / name).read_bytes() for name in SPLIT_FILES}
    huge = raw.copy()
    huge[[0, 1], 7] = 1.7e308
    np.save(path, huge)
    sentence = refused(*TINY_MINIBOONE, data_dir=root, cwd=tmp_path)
    assert sentence.startswith(f"preprocessing {path} gives NaN or Inf values in column 7 of the train split")
    assert {name: (folder / name).read_bytes() for name in SPLIT_FILES} == poisoned
    assert sorted(os.listdir(folder)) == ["data.npy", *sorted(SPLIT_FILES)]

    np.save(path, raw)
    lrsflows(*TINY_MINIBOONE, f"paths.data_dir={root}", cwd=tmp_path)
    record = json.loads((folder / "splits.json").read_text())
    assert record["raw"] == {"data.npy": [path.stat().st_size, path.stat().st_mtime_ns]}
    for name, split in zip(SPLIT_FILES, preprocess_miniboone(raw)):
        np.testing.assert_allclose(np.load(folder / name), split)
    [results] = tmp_path.rglob("results.json")
    assert json.loads(results.read_text())["steps"] == 2


def test_a_group_where_a_bsds300_dataset_belongs_is_one_sentence(tmp_path):
    root = tmp_path / "data"
    make_bsds300(root, "bsds300/bsds300.hdf5")
    path = root / "bsds300" / "bsds300.hdf5"
    with h5py.File(path, "a") as file:
        del file["train"]
        file.create_group("train")
    assert refused("dataset=bsds300", "trainer.progress_bar=false", data_dir=root, cwd=tmp_path) == (
        f"{path} has a group named 'train' where BSDS300's train dataset (a table of 63 numbers per row) is expected; "
        f"{REDOWNLOAD}"
    )


def test_a_malicious_cifar10_batch_is_refused_and_never_run(tmp_path):
    root = tmp_path / "data"
    write_cifar(root / CIFAR_TORCHVISION, images(10, (3, 32, 32), 0), images(2, (3, 32, 32), 1))
    path, marker = root / CIFAR_TORCHVISION / "data_batch_3", tmp_path / "marker"
    write_malicious_pickle(path, marker)
    sentence = refused(
        "experiment=smoke/images",
        "dataset=cifar10",
        "dataset.num_workers=0",
        "trainer.progress_bar=false",
        data_dir=root,
        cwd=tmp_path,
    )
    assert sentence == (
        f"{path} asks the unpickler for {os.system.__module__}.system, which no CIFAR-10 batch needs, so it was not "
        f"loaded (the file may be malicious); delete it and run `lrsflows-data --dataset cifar10 "
        f"--data-dir {root}` to download it again."
    )
    assert not marker.exists()


def test_a_malicious_gas_pickle_is_refused_and_never_run(tmp_path):
    root = tmp_path / "data"
    (root / "gas").mkdir(parents=True)
    path, marker = root / "gas" / "ethylene_CO.pickle", tmp_path / "marker"
    write_malicious_pickle(path, marker)
    assert refused("dataset=gas", "trainer.progress_bar=false", data_dir=root, cwd=tmp_path) == (
        f"{path} asks the unpickler for {os.system.__module__}.system, which no GAS DataFrame needs, so it was not "
        f"loaded (the file may be malicious); {REDOWNLOAD}"
    )
    assert not marker.exists()
