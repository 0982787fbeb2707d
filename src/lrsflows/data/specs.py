"""Every dataset's facts in one place: size, title, the files it is read from, where they are downloaded.

The loaders (tabular.py, images.py and the image readers), download.py, the lrsflows-data command and the
result tables all read these, so adding a dataset means one spec here plus its preprocessing function
(tabular.PREPROCESSORS) or reader (images.READERS). Nothing heavy is imported: the download script and the
result tables import this without torch. The 2-D densities have no files and live in toy2d.py instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Archive:
    """A .tar.gz fetched from `url` and checked against `md5`; its `top/` folder is unpacked into `destination`.

    `name` is lrsflows-data's --dataset choice (the five MAF datasets share one archive);
    `path` and `destination` are relative to the data root.
    """

    name: str
    url: str
    md5: str
    path: str
    top: str
    destination: str


@dataclass(frozen=True)
class Files:
    """Single files fetched from the folder URL `url`, each checked against its MD5, kept as they are in `folder`."""

    name: str
    url: str
    md5s: dict[str, str]
    folder: str


@dataclass(frozen=True)
class Manual:
    """No automatic download (the release is offline): download.imagenet_instructions prints the steps, which
    name NSF's Google Drive copies: the zip of PNG folders and, where NSF made one, the (train, valid) .npy pair."""

    name: str
    drive_zip: str
    drive_npy: tuple[str, str] | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset. `sources` are alternatives, tried in order, each a tuple of paths under the data root that
    must all exist (files, or for images the folders the reader looks in). `splits` are the published
    (train, val, test) sizes, which the full data must reproduce. `cached`: the preprocessed tabular splits are
    cached beside the raw files (BSDS300's file already holds its splits). `validation_first`: the image
    validation set is the start of the seeded permutation (NSF/LRS slice it themselves) rather than its end
    (their random_split)."""

    name: str
    kind: str
    title: str
    sources: tuple[tuple[str, ...], ...]
    download: Archive | Files | Manual
    features: int | None = None
    shape: tuple[int, int, int] | None = None
    splits: tuple[int, int, int] | None = None
    cached: bool = True
    validation_first: bool = False

    def __post_init__(self):
        size = {"tabular": self.features, "image": self.shape}.get(self.kind)
        if size is None:
            raise ValueError(f"dataset {self.name!r} needs kind 'tabular' with features or 'image' with a shape.")


MAF = Archive(
    "maf",
    "https://zenodo.org/records/1161203/files/data.tar.gz?download=1",
    "9b9c9b0375315ad270eba4ce80c093ab",
    path="data.tar.gz",
    top="data",
    destination="",
)
CIFAR10_FOLDER = "cifar-10/cifar-10-batches-py"  # torchvision's root and the tarball's folder, as NSF/LRS read it
MNIST_RAW = "mnist/MNIST/raw"  # torchvision's layout (LRS)


def _tabular(
    name: str, features: int, splits: tuple[int, int, int], *sources: tuple[str, ...], **options
) -> DatasetSpec:
    return DatasetSpec(name, "tabular", name.upper(), sources, MAF, features=features, splits=splits, **options)


def _imagenet(
    size: int, drive_zip: str, *sources: tuple[str, str], drive_npy: tuple[str, str] | None = None
) -> DatasetSpec:
    name, folders = f"imagenet{size}", (("train", "val"), (f"train_{size}x{size}", f"valid_{size}x{size}"))
    pngs = tuple(tuple(f"{name}/{folder}" for folder in pair) for pair in folders)  # NSF's renamed ones, then Oord's
    return DatasetSpec(
        name,
        "image",
        f"ImageNet {size}x{size}",
        sources + pngs,
        Manual(name, drive_zip, drive_npy),
        shape=(3, size, size),
    )


# Table order: the result tables list datasets in this order.
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        _tabular("power", 6, (1659917, 184435, 204928), ("power/data.npy",)),
        _tabular("gas", 8, (852174, 94685, 105206), ("gas/ethylene_CO.npz",), ("gas/ethylene_CO.pickle",)),
        _tabular("hepmass", 21, (315123, 35013, 174987), ("hepmass/1000_train.csv", "hepmass/1000_test.csv")),
        _tabular("miniboone", 43, (29556, 3284, 3648), ("miniboone/data.npy",)),
        _tabular(
            "bsds300", 63, (1000000, 50000, 250000), ("BSDS300/BSDS300.hdf5",), ("bsds300/bsds300.hdf5",), cached=False
        ),
        DatasetSpec(
            "mnist",
            "image",
            "MNIST",
            ((MNIST_RAW,), ("mnist",)),
            Files(
                "mnist",
                "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's working mirror
                {
                    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
                },
                MNIST_RAW,
            ),
            shape=(1, 28, 28),
            validation_first=True,
        ),
        DatasetSpec(
            "cifar10",
            "image",
            "CIFAR-10",
            ((CIFAR10_FOLDER,), ("cifar-10-batches-py",)),
            Archive(
                "cifar10",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",  # torchvision's archive and checksum
                "c58f30108f718f92721af3b95e74349a",
                path="cifar-10/cifar-10-python.tar.gz",
                top="cifar-10-batches-py",
                destination=CIFAR10_FOLDER,
            ),
            shape=(3, 32, 32),
            validation_first=True,
        ),
        _imagenet(32, "1TXsg8TP5SfsSL6Gk39McCkZu9rhSQnNX"),
        _imagenet(
            64,
            "1NqpYnfluJz9A2INgsn16238FUfZh9QwR",
            ("imagenet64_fast/train_64x64.npy", "imagenet64_fast/valid_64x64.npy"),  # NSF's fast pair, tried first
            drive_npy=("15AMmVSX-LDbP7LqC3R9Ns0RPbDI9301D", "1Me8EhsSwWbQjQ91vRG1emkIOCgDKK4yC"),
        ),
    )
}
# What lrsflows-data offers, by --dataset choice: one entry per archive, file set or manual dataset.
DOWNLOADS: dict[str, Archive | Files | Manual] = {spec.download.name: spec.download for spec in DATASETS.values()}


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of dataset `name`; ValueError naming the choices for anything else."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    return DATASETS[name]


def dataset_names(kind: str) -> tuple[str, ...]:
    """The datasets of one kind ("tabular" or "image"), in table order."""
    return tuple(name for name, spec in DATASETS.items() if spec.kind == kind)


def data_kind(dataset: str) -> str:
    """A dataset's kind as its spec says; a name without a spec is a generated 2-D density ("toy2d")."""
    spec = DATASETS.get(dataset)
    return spec.kind if spec is not None else "toy2d"
