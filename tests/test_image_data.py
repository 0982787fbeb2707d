"""The image readers and splits on files in the exact reference formats, written here, plus real CIFAR-10 and MNIST bytes.

Fixtures follow docs/datasets.md §Images independently of the readers: CIFAR-10 batches are written
the way Python 2's cPickle wrote them, IDX headers are packed by hand, ImageNet PNGs by Pillow.
"""

import gzip
import os
import pickle
import pickletools
import shlex
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader, random_split

from lrsflows.data.cifar10 import read_cifar10
from lrsflows.data.errors import DataError
from lrsflows.data.image_datasets import NpyImages
from lrsflows.data.images import load_image_splits, split_training_set
from lrsflows.data.specs import dataset_spec

REPO = Path(__file__).resolve().parents[1]
REAL_SAMPLES = Path(os.environ.get("LRSFLOWS_REAL_SAMPLES", REPO.parent / "shared" / "data"))
CIFAR_TORCHVISION = "cifar-10/cifar-10-batches-py"


def images(count, shape, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(count, *shape), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------- CIFAR-10 fixtures


class Python2Pickler(pickle._Pickler):
    """Pickles like Python 2's cPickle made the CIFAR-10 batches: every string a Python 2 `str` (U/T opcodes).

    Python 3's protocol 2 instead writes bytes as `_codecs.encode` calls and str as unicode, neither
    of which a Python 2 file holds; numpy 2's module name is mapped back to numpy.core.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_python2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = dispatch[str] = save_python2_str

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def python2_pickle(obj, path):
    with open(path, "wb") as handle:
        Python2Pickler(handle, protocol=2).dump(obj)


def write_batch(path, batch_images, label, labels=None):
    """A batch dict as in the archive: planar RGB rows, int labels, file names, batch label (keys are Python 2 str)."""
    count = len(batch_images)
    python2_pickle(
        {
            b"batch_label": label,
            b"labels": [int(label) for label in (labels if labels is not None else np.arange(count) % 10)],
            b"data": batch_images.reshape(count, -1),
            b"filenames": [f"image_{index:05d}.png".encode() for index in range(count)],
        },
        path,
    )


def write_cifar(folder, train, test):
    """data_batch_1..5 (train split into five), test_batch and batches.meta in `folder`."""
    folder.mkdir(parents=True)
    for number, part in enumerate(np.array_split(train, 5), start=1):
        write_batch(folder / f"data_batch_{number}", part, f"training batch {number} of 5".encode())
    write_batch(folder / "test_batch", test, b"testing batch 1 of 1")
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    meta = {b"num_cases_per_batch": len(train) // 5, b"label_names": names, b"num_vis": 3072}
    python2_pickle(meta, folder / "batches.meta")


@pytest.fixture
def cifar_root(tmp_path):
    train, test = images(30, (3, 32, 32), 1), images(7, (3, 32, 32), 2)
    write_cifar(tmp_path / CIFAR_TORCHVISION, train, test)
    return tmp_path, train, test


def stacked(dataset):
    return torch.stack([dataset[index] for index in range(len(dataset))]).numpy()


def test_cifar_fixture_is_a_python2_pickle(cifar_root):
    root, _, _ = cifar_root
    blob = (root / CIFAR_TORCHVISION / "data_batch_1").read_bytes()
    opcodes = {opcode.name for opcode, _, _ in pickletools.genops(blob)}
    assert {"SHORT_BINSTRING", "BINSTRING"} <= opcodes and not opcodes & {"BINUNICODE", "SHORT_BINUNICODE"}
    assert b"_codecs" not in blob and b"cnumpy.core.multiarray\n_reconstruct\n" in blob
    globals_ = {argument for opcode, argument, _ in pickletools.genops(blob) if opcode.name == "GLOBAL"}
    assert globals_ == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}  # all a batch needs
    assert set(pickle.loads(blob, encoding="bytes")) == {b"batch_label", b"labels", b"data", b"filenames"}


def test_cifar10_train_is_the_five_batches_in_order_and_splits_follow_randperm(cifar_root):
    root, train, test = cifar_root
    splits = load_image_splits("cifar10", root, valid_frac=0.2, seed=113)
    permutation = torch.randperm(30, generator=torch.Generator().manual_seed(113)).numpy()
    np.testing.assert_array_equal(splits.val_indices, permutation[:6])
    np.testing.assert_array_equal(stacked(splits.val), train[permutation[:6]])
    np.testing.assert_array_equal(stacked(splits.train), train[permutation[6:]])
    np.testing.assert_array_equal(stacked(splits.test), test)
    item = splits.train[0]
    assert item.dtype == torch.uint8 and item.shape == (3, 32, 32) and splits.shape == dataset_spec("cifar10").shape
    assert splits.val_indices.dtype == np.int64


@pytest.fixture
def real_cifar_test_images():
    folder = REAL_SAMPLES / "cifar10-test-samples"
    files = sorted(folder.glob("cifar10_*.png"))
    if len(files) != 20:
        pytest.skip(f"real CIFAR-10 samples not found in {folder} (set LRSFLOWS_REAL_SAMPLES)")
    labels = [int(path.stem.split("_")[2]) for path in files]
    pixels = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in files])  # (20, 32, 32, 3)
    return pixels, labels


def test_real_cifar10_test_images_come_back_pixel_exact_in_chw(tmp_path, real_cifar_test_images):
    pixels, labels = real_cifar_test_images
    assert labels == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    folder = tmp_path / "cifar-10-batches-py"  # the bare extracted tarball layout
    write_cifar(folder, images(10, (3, 32, 32), 3), images(1, (3, 32, 32), 4))
    # Planar rows written straight from the description: 1024 red values row-major, then green, then blue.
    rows = np.concatenate([pixels[..., channel].reshape(20, 1024) for channel in range(3)], axis=1)
    write_batch(folder / "test_batch", rows.reshape(20, 3, 32, 32), b"testing batch 1 of 1", labels)
    test = load_image_splits("cifar10", tmp_path, 0.1, 0).test
    assert len(test) == 20
    for index in range(20):
        np.testing.assert_array_equal(test[index].numpy(), pixels[index].transpose(2, 0, 1))


def test_cifar10_torchvision_layout_wins_over_the_bare_one(cifar_root):
    root, train, _ = cifar_root
    write_cifar(root / "cifar-10-batches-py", images(10, (3, 32, 32), 5), images(2, (3, 32, 32), 6))
    splits = load_image_splits("cifar10", root, 0.1, 0)
    assert len(splits.train) + len(splits.val) == len(train)


def test_missing_cifar10_names_both_layouts_and_the_download_command(tmp_path):
    with pytest.raises(DataError) as error:
        load_image_splits("cifar10", tmp_path, 0.02, 113)
    assert str(error.value) == (
        f"CIFAR-10 not found: expected data_batch_1..5 and test_batch in {tmp_path}/cifar-10/cifar-10-batches-py or "
        f"{tmp_path}/cifar-10-batches-py; run `lrsflows-data --dataset cifar10 --data-dir {tmp_path}` "
        "(downloads and MD5-checks the Toronto archive) or point paths.data_dir / LRSFLOWS_DATA_DIR at the folder "
        "that holds them."
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda path: path.write_bytes(path.read_bytes()[:500]), r"is not a readable CIFAR-10 batch \("),
        (lambda path: python2_pickle([1, 2], path), r"has no `data` array"),
        (
            lambda path: write_batch(path, images(3, (3, 16, 16), 7), b"x"),
            r"holds uint8 data of shape \(3, 768\) where uint8 rows of 3x32x32 values, shape \(n, 3072\), are expected",
        ),
    ],
)
def test_damaged_cifar10_batch_is_named_with_the_fix(cifar_root, damage, message):
    root, _, _ = cifar_root
    path = root / CIFAR_TORCHVISION / "data_batch_3"
    damage(path)
    with pytest.raises(DataError, match=message) as error:
        load_image_splits("cifar10", root, 0.1, 0)
    assert str(error.value).startswith(str(path))
    command = f"`lrsflows-data --dataset cifar10 --data-dir {root}`"
    assert str(error.value).endswith(f"delete it and run {command} to download it again.")


class RunsShellCommand:
    """Unpickling this runs `command` through os.system: what a malicious data file does on a plain pickle.load."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def write_malicious_pickle(path, marker):
    """A pickle shaped like a CIFAR-10 batch whose `data` creates `marker` when unpickled without restriction."""
    with open(path, "wb") as handle:
        pickle.dump(
            {b"data": RunsShellCommand(f"touch {shlex.quote(str(marker))}"), b"labels": [0]}, handle, protocol=2
        )


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL])
def test_cifar10_batch_pickled_by_this_python_and_numpy_loads_too(tmp_path, protocol):
    """A batch re-pickled in Python 3: numpy._core names under numpy 2, and bytes as _codecs.encode in protocol 2."""
    batch = images(4, (3, 32, 32), 26)
    folder = tmp_path / CIFAR_TORCHVISION
    write_cifar(folder, images(10, (3, 32, 32), 27), images(3, (3, 32, 32), 28))
    with open(folder / "data_batch_1", "wb") as handle:
        pickle.dump(
            {b"batch_label": b"re-pickled", b"labels": [1, 2, 3, 4], b"data": batch.reshape(4, -1)}, handle, protocol
        )
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
        assert b"numpy._core.multiarray" in (folder / "data_batch_1").read_bytes()
    train, _ = read_cifar10(tmp_path)
    assert len(train) == 4 + 8
    np.testing.assert_array_equal(train[:4].numpy(), batch)


def test_a_malicious_cifar10_batch_is_refused_without_running_it(cifar_root):
    root, _, _ = cifar_root
    path, marker = root / CIFAR_TORCHVISION / "data_batch_2", root / "marker"
    write_malicious_pickle(path, marker)
    with pytest.raises(DataError) as error:
        load_image_splits("cifar10", root, 0.1, 0)
    assert not marker.exists()
    assert str(error.value).startswith(
        f"{path} asks the unpickler for {os.system.__module__}.system, which no CIFAR-10 "
    )
    assert "may be malicious" in str(error.value) and str(error.value).endswith("to download it again.")
    pickle.loads(path.read_bytes())  # the same bytes through a plain unpickler do run the command
    assert marker.exists()


# ---------------------------------------------------------------------------------------------- MNIST


def idx_bytes(pixels, magic=0x00000803, count=None):
    """An IDX image file packed by hand: big-endian magic, count, rows, cols, then the pixels."""
    header = struct.pack(">IIII", magic, len(pixels) if count is None else count, *pixels.shape[1:])
    return header + pixels.tobytes()


def decode_idx_gz(path):
    payload = gzip.decompress(path.read_bytes())
    return np.frombuffer(payload[16:], dtype=np.uint8).reshape(-1, 28, 28)


@pytest.fixture
def real_mnist_test():
    path = REAL_SAMPLES / "mnist-test" / "t10k-images-idx3-ubyte.gz"
    if not path.is_file():
        pytest.skip(f"real MNIST test images not found in {path.parent} (set LRSFLOWS_REAL_SAMPLES)")
    return path


def test_real_mnist_test_set_through_a_torchvision_layout_of_symlinks(tmp_path, real_mnist_test):
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte.gz").symlink_to(real_mnist_test)
    train = images(50, (28, 28), 8)
    (raw / "train-images-idx3-ubyte").write_bytes(idx_bytes(train))
    splits = load_image_splits("mnist", tmp_path, 0.02, 113)
    assert len(splits.test) == 10000 and splits.test[0].shape == (1, 28, 28) and splits.test[0].dtype == torch.uint8
    expected = decode_idx_gz(real_mnist_test)
    np.testing.assert_array_equal(splits.test.images[:, 0].numpy(), expected)
    np.testing.assert_array_equal(splits.test[9999][0].numpy(), expected[9999])
    assert len(splits.val) == 1 and len(splits.train) == 49
    np.testing.assert_array_equal(splits.val[0][0].numpy(), train[splits.val_indices[0]])


def test_mnist_gzip_files_in_the_plain_mnist_folder(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    train, test = images(20, (28, 28), 9), images(4, (28, 28), 10)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(train)))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(test)))
    splits = load_image_splits("mnist", tmp_path, 0.25, 1)
    np.testing.assert_array_equal(stacked(splits.test)[:, 0], test)
    np.testing.assert_array_equal(np.sort(np.concatenate([splits.val_indices, splits.train.indices])), np.arange(20))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            idx_bytes(images(3, (28, 28), 0), count=4),
            r"has 2368 bytes where its header \(4 images of 28x28\) needs 3152",
        ),
        (
            idx_bytes(images(3, (28, 28), 0), magic=0x801),
            r"starts with 0x00000801, not the IDX image magic number 0x00000803",
        ),
        (idx_bytes(images(3, (32, 32), 0)), r"holds 32x32 images where MNIST's are 28x28"),
        (b"\x00\x00\x08", r"has 3 bytes, fewer than an IDX header's 16"),
    ],
)
def test_inconsistent_idx_file_is_a_clear_error(tmp_path, payload, message):
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(payload)
    (folder / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images(2, (28, 28), 1)))
    with pytest.raises(DataError, match=message) as error:
        load_image_splits("mnist", tmp_path, 0.5, 0)
    assert str(error.value).startswith(str(folder / "train-images-idx3-ubyte"))
    assert "delete it and run `lrsflows-data --dataset mnist" in str(error.value)


def test_truncated_gzip_and_missing_mnist_are_clear_errors(tmp_path):
    tried = f"{tmp_path}/mnist/MNIST/raw or {tmp_path}/mnist"
    with pytest.raises(DataError, match=rf"MNIST not found: expected .* in {tried}; run `lrsflows-data"):
        load_image_splits("mnist", tmp_path, 0.02, 0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images(5, (28, 28), 0)))[:-20])
    (folder / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images(2, (28, 28), 1)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz cannot be read \(.*\); delete it and run"):
        load_image_splits("mnist", tmp_path, 0.5, 0)


# ---------------------------------------------------------------------------------------------- ImageNet


def write_pngs(folder, pixels, names, mode="RGB"):
    """HWC uint8 images as PNG files with the given names (written in that order, not sorted)."""
    folder.mkdir(parents=True)
    for name, image in zip(names, pixels):
        Image.fromarray(image[..., 0] if mode == "L" else image, mode).save(folder / name)


@pytest.mark.parametrize(("train_folder", "test_folder"), [("train", "val"), ("train_32x32", "valid_32x32")])
def test_imagenet32_png_folders_in_sorted_name_order(tmp_path, train_folder, test_folder):
    train, test = images(5, (32, 32, 3), 11), images(3, (32, 32, 3), 12)
    write_pngs(tmp_path / "imagenet32" / train_folder, train, ["4.png", "0.png", "3.png", "1.png", "2.png"])
    write_pngs(tmp_path / "imagenet32" / test_folder, test, ["b.png", "a.png", "c.png"], mode="L")
    (tmp_path / "imagenet32" / train_folder / "notes.txt").write_text("not an image")
    splits = load_image_splits("imagenet32", tmp_path, 0.4, 7)
    official = train[[1, 3, 4, 2, 0]].transpose(0, 3, 1, 2)  # sorted names 0..4
    np.testing.assert_array_equal(stacked(splits.val), official[splits.val_indices])
    np.testing.assert_array_equal(stacked(splits.train), official[splits.train.indices])
    grey = test[[1, 0, 2], ..., 0]  # written as single-channel PNGs: converted to RGB by repeating the channel
    np.testing.assert_array_equal(stacked(splits.test), np.repeat(grey[:, None], 3, axis=1))


def write_npy_pair(folder, train, test):
    folder.mkdir(parents=True)
    np.save(folder / "train_64x64.npy", train)
    np.save(folder / "valid_64x64.npy", test)


def test_imagenet64_npy_pair_is_memory_mapped_and_preferred_over_png_folders(tmp_path):
    train, test = images(10, (3, 64, 64), 13), images(2, (3, 64, 64), 14)
    write_npy_pair(tmp_path / "imagenet64_fast", train, test)
    write_pngs(tmp_path / "imagenet64" / "train", images(1, (64, 64, 3), 15), ["0.png"])
    write_pngs(tmp_path / "imagenet64" / "val", images(1, (64, 64, 3), 16), ["0.png"])
    splits = load_image_splits("imagenet64", tmp_path, 0.2, 3)
    assert isinstance(splits.test, NpyImages) and isinstance(splits.test._images, np.memmap)
    np.testing.assert_array_equal(stacked(splits.test), test)
    np.testing.assert_array_equal(stacked(splits.val), train[splits.val_indices])
    assert splits.shape == (3, 64, 64) and splits.val[0].dtype == torch.uint8


def test_wrong_resolution_pngs_are_refused_at_load(tmp_path):
    write_pngs(tmp_path / "imagenet32" / "train_32x32", images(2, (64, 64, 3), 17), ["0.png", "1.png"])
    write_pngs(tmp_path / "imagenet32" / "valid_32x32", images(1, (32, 32, 3), 18), ["0.png"])
    with pytest.raises(DataError) as error:
        load_image_splits("imagenet32", tmp_path, 0.5, 0)
    folder = tmp_path / "imagenet32" / "train_32x32"
    assert str(error.value) == (
        f"{folder}/0.png is a 64x64 image where 32x32 images are expected; {folder} holds the wrong resolution, "
        "so replace its files with the 32x32 ones."
    )


def test_wrong_shape_npy_corrupt_png_and_empty_folder_are_refused(tmp_path):
    write_npy_pair(tmp_path / "imagenet64_fast", images(4, (3, 32, 32), 19), images(2, (3, 64, 64), 20))
    expected = r"holds uint8 images of shape \(4, 3, 32, 32\) where uint8 images of shape \(N, 3, 64, 64\) are expected"
    with pytest.raises(DataError, match=rf"train_64x64.npy {expected}; delete it and fetch the imagenet64 files again"):
        load_image_splits("imagenet64", tmp_path, 0.5, 0)
    (tmp_path / "imagenet64_fast" / "train_64x64.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"train_64x64.npy is not a readable NumPy array"):
        load_image_splits("imagenet64", tmp_path, 0.5, 0)
    write_pngs(tmp_path / "imagenet32" / "train", images(2, (32, 32, 3), 21), ["0.png", "1.png"])
    (tmp_path / "imagenet32" / "val").mkdir()
    with pytest.raises(DataError, match=r"imagenet32/val holds no .png images"):
        load_image_splits("imagenet32", tmp_path, 0.5, 0)
    (tmp_path / "imagenet32" / "val" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match=r"imagenet32/val/0.png cannot be read as an image"):
        load_image_splits("imagenet32", tmp_path, 0.5, 0)


def test_missing_imagenet_lists_every_layout_and_the_manual_steps(tmp_path):
    with pytest.raises(DataError) as error:
        load_image_splits("imagenet64", tmp_path, 0.01, 0)
    message = str(error.value)
    assert message.startswith(
        f"imagenet64 not found: looked for {tmp_path}/imagenet64_fast/train_64x64.npy + "
        f"{tmp_path}/imagenet64_fast/valid_64x64.npy, {tmp_path}/imagenet64/train + {tmp_path}/imagenet64/val, "
        f"{tmp_path}/imagenet64/train_64x64 + {tmp_path}/imagenet64/valid_64x64; imagenet64 cannot be downloaded"
    )
    assert "train_64x64.tar and valid_64x64.tar" in message and message.count(".") > 2 and message.endswith(".")


# ---------------------------------------------------------------------------------------------- splits


@pytest.mark.parametrize("validation_first", [True, False])
def test_split_is_a_seeded_disjoint_cover_equal_to_the_reference(validation_first):
    size, valid_frac, seed = 1001, 0.02, 656693568
    train, val = split_training_set(size, valid_frac, seed, validation_first)
    assert len(val) == 20 and len(train) == 981 and train.dtype == val.dtype == np.int64
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(size))
    again = split_training_set(size, valid_frac, seed, validation_first)
    np.testing.assert_array_equal(again[1], val)
    assert not np.array_equal(split_training_set(size, valid_frac, seed + 1, validation_first)[1], val)
    generator = torch.Generator().manual_seed(seed)
    if validation_first:
        permutation = torch.randperm(size, generator=generator).numpy()
        reference_train, reference_val = permutation[20:], permutation[:20]
    else:
        reference_train, reference_val = (
            np.array(subset.indices) for subset in random_split(range(size), [981, 20], generator=generator)
        )
    np.testing.assert_array_equal(train, reference_train)
    np.testing.assert_array_equal(val, reference_val)


@pytest.mark.parametrize(
    ("valid_frac", "message"),
    [(0.0, "strictly between 0 and 1"), (1.0, "strictly between 0 and 1"), (0.01, "is less than one image")],
)
def test_valid_frac_must_give_a_nonempty_validation_split(cifar_root, valid_frac, message):
    with pytest.raises(DataError, match=message):
        load_image_splits("cifar10", cifar_root[0], valid_frac, 0)


def test_unknown_image_dataset(tmp_path):
    with pytest.raises(
        DataError, match="unknown image dataset 'svhn'; choose one of mnist, cifar10, imagenet32, imagenet"
    ):
        load_image_splits("svhn", tmp_path, 0.1, 0)


# ---------------------------------------------------------------------------------------------- workers


@pytest.fixture
def all_kinds(cifar_root):
    """Splits backed by each dataset kind: an in-memory tensor, a memory-mapped .npy pair, PNG folders."""
    root, _, _ = cifar_root
    write_npy_pair(root / "imagenet64_fast", images(6, (3, 64, 64), 22), images(2, (3, 64, 64), 23))
    write_pngs(root / "imagenet32" / "train", images(4, (32, 32, 3), 24), [f"{i}.png" for i in range(4)])
    write_pngs(root / "imagenet32" / "val", images(2, (32, 32, 3), 25), ["0.png", "1.png"])
    return [load_image_splits(name, root, 0.5, 0) for name in ("cifar10", "imagenet64", "imagenet32")]


def test_datasets_survive_pickling_without_dragging_the_mapped_file(all_kinds):
    for splits in all_kinds:
        for dataset in (splits.train, splits.val, splits.test):
            copy = pickle.loads(pickle.dumps(dataset))
            np.testing.assert_array_equal(stacked(copy), stacked(dataset))
    assert len(pickle.dumps(all_kinds[1].test)) < 1000  # two 64x64 images would be 24 kB


def test_multi_worker_spawn_dataloader_returns_the_same_images(all_kinds):
    dataset = ConcatDataset([splits.train for splits in all_kinds] + [all_kinds[2].test])
    loader = DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context="spawn")
    loaded = list(loader)
    assert len(loaded) == len(dataset) == 15 + 3 + 2 + 2
    for index, image in enumerate(loaded):
        assert torch.equal(image, dataset[index])
