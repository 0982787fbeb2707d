"""The dataset specs: one per dataset, each with its loader entry, and importable without torch."""

import subprocess
import sys

import pytest

from lrsflows.data.download import DOWNLOADERS
from lrsflows.data.images import READERS
from lrsflows.data.specs import DATASETS, DOWNLOADS, Archive, DatasetSpec, Files, Manual, dataset_names, dataset_spec
from lrsflows.data.tabular import PREPROCESSORS

TITLES = ["POWER", "GAS", "HEPMASS", "MINIBOONE", "BSDS300", "MNIST", "CIFAR-10", "ImageNet 32x32", "ImageNet 64x64"]


def test_specs_are_in_table_order_and_each_kind_has_its_loader_entry():
    assert [spec.title for spec in DATASETS.values()] == TITLES
    assert tuple(PREPROCESSORS) == dataset_names("tabular")
    assert tuple(READERS) == dataset_names("image")
    assert all(spec.features and spec.splits for spec in map(dataset_spec, dataset_names("tabular")))
    assert all(len(spec.shape) == 3 for spec in map(dataset_spec, dataset_names("image")))


def test_downloads_are_one_per_choice_of_the_download_script():
    assert list(DOWNLOADS) == ["maf", "mnist", "cifar10", "imagenet32", "imagenet64"]
    assert [type(download) for download in DOWNLOADS.values()] == [Archive, Files, Archive, Manual, Manual]
    assert {spec.download.name for spec in map(dataset_spec, dataset_names("tabular"))} == {"maf"}
    assert set(DOWNLOADERS) == {name for name, download in DOWNLOADS.items() if not isinstance(download, Manual)}


def test_an_unknown_name_is_one_sentence_naming_the_choices():
    with pytest.raises(ValueError, match=r"^unknown dataset 'mnsit'; choose one of power, gas, .*, imagenet64\.$"):
        dataset_spec("mnsit")


def test_a_spec_without_its_size_is_refused():
    with pytest.raises(ValueError, match="needs kind 'tabular' with features or 'image' with a shape"):
        DatasetSpec("new", "tabular", "NEW", (("new/data.npy",),), DOWNLOADS["maf"])


def test_specs_and_downloads_import_without_torch():
    code = "import sys, lrsflows.data.specs, lrsflows.data.download; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
