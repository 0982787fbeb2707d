"""Download, verify and unpack the data the loaders read: the MAF archive, CIFAR-10 and MNIST.

Nothing else in the package downloads: loaders only read, and `make data` (or
lrsflows-data --dataset NAME) runs this once. Every file is checked against a known MD5
before anything trusts it; downloads resume from a `.part` file. ImageNet has no download (its
official release is offline), only the manual steps of `imagenet_instructions`. This module does
not import torch, so the download script starts quickly.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import ssl
import sys
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from .errors import DataError
from .specs import DOWNLOADS, Manual, dataset_spec

MAF_RETRY = "`make data`"
MAF, CIFAR10, MNIST = DOWNLOADS["maf"], DOWNLOADS["cifar10"], DOWNLOADS["mnist"]
CHUNK_BYTES = 1 << 20
NETWORK_ERRORS = (URLError, TimeoutError, ConnectionError, ssl.SSLError, http.client.HTTPException)


def download_command(dataset: str, data_dir: Path) -> str:
    """The command that downloads `dataset` into `data_dir` (ImageNet: prints the manual steps), quoted for messages."""
    return f"`lrsflows-data --dataset {dataset} --data-dir {data_dir}`"


def refetch_advice(dataset: str, data_dir: Path) -> str:
    """How to replace a damaged or wrong file of an image dataset: the end of an error message about it."""
    if isinstance(dataset_spec(dataset).download, Manual):
        steps = download_command(dataset, data_dir)
        return f"delete it and fetch the {dataset} files again by hand ({steps} prints the steps)."
    return f"delete it and run {download_command(dataset, data_dir)} to download it again."


def imagenet_instructions(name: str, data_dir: Path) -> str:
    """The manual steps for Oord's downsampled ImageNet (`imagenet32` or `imagenet64`), as one clause."""
    spec = dataset_spec(name)
    size, folder = spec.shape[-1], data_dir / name
    steps = (
        f"{name} cannot be downloaded automatically (the Oord et al. release, image-net.org/small/download.php, is "
        f"offline): unpack its train_{size}x{size}.tar and valid_{size}x{size}.tar, or NSF's Google Drive zip "
        f"(id {spec.download.drive_zip}), so that {folder} holds the PNG folders train_{size}x{size}/ and "
        f"valid_{size}x{size}/ (or NSF's train/ and val/)"
    )
    if spec.download.drive_npy:
        train, valid = (PurePosixPath(path) for path in spec.sources[0])
        steps += (
            f", or place NSF's {train.name} and {valid.name} (Google Drive ids {spec.download.drive_npy[0]} "
            f"and {spec.download.drive_npy[1]}) in {data_dir / train.parent}"
        )
    return steps + "."


@dataclass
class Extraction:
    """What unpacking did, as paths relative to the folder unpacked into (refused: archive member names)."""

    extracted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def download_maf(data_dir: str | Path, url: str = MAF.url, md5: str = MAF.md5, timeout: float = 60.0) -> Extraction:
    """Fetch the archive (or reuse a verified one) into data_dir and unpack its data/ tree there."""
    root = _make_folder(Path(data_dir).expanduser().absolute())
    archive = fetch_file(url, root / MAF.path, md5.lower(), "the MAF archive", MAF_RETRY, timeout)
    return extract_archive(archive, MAF.top, root / MAF.destination, MAF_RETRY)


def download_cifar10(
    data_dir: str | Path, url: str = CIFAR10.url, md5: str = CIFAR10.md5, timeout: float = 60.0
) -> Extraction:
    """Fetch the python-version tarball into <data_dir>/cifar-10/ and unpack cifar-10-batches-py/ next to it."""
    root = Path(data_dir).expanduser().absolute()
    target = root / CIFAR10.path
    _make_folder(target.parent)
    retry = download_command("cifar10", root)
    archive = fetch_file(url, target, md5.lower(), "the CIFAR-10 archive", retry, timeout)
    return extract_archive(archive, CIFAR10.top, root / CIFAR10.destination, retry)


def download_mnist(
    data_dir: str | Path, base_url: str = MNIST.url, md5s: dict[str, str] = MNIST.md5s, timeout: float = 60.0
) -> list[Path]:
    """Fetch the four gzip files into <data_dir>/mnist/MNIST/raw/, kept compressed (the reader reads .gz)."""
    root = Path(data_dir).expanduser().absolute()
    folder = _make_folder(root / MNIST.folder)
    retry = download_command("mnist", root)
    return [
        fetch_file(
            f"{base_url.rstrip('/')}/{name}", folder / name, md5.lower(), f"the MNIST file {name}", retry, timeout
        )
        for name, md5 in md5s.items()
    ]


# Each automatic download by its lrsflows-data choice (specs.DOWNLOADS); manual ones have none.
DOWNLOADERS = {"maf": download_maf, "cifar10": download_cifar10, "mnist": download_mnist}


def _make_folder(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"cannot create the data folder {folder} ({error}); choose another one with --data-dir."
        ) from None
    return folder


def file_md5(path: Path) -> str:
    """MD5 hex digest, streamed so an 800 MB archive never sits in memory."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(url: str, target: Path, md5: str, label: str, retry: str, timeout: float = 60.0) -> Path:
    """The verified file at `target`: reused if present, else downloaded to a resumable .part, checked, renamed.

    `label` names the file and `retry` the command that runs this again, both for error messages.
    """
    if target.is_file():
        _require_md5(target, md5, str(target), target, retry)
        return target
    partial = target.with_name(target.name + ".part")
    try:
        _download(url, partial, timeout)
    except NETWORK_ERRORS as error:
        raise DataError(
            f"could not download {label} from {url} ({error}); download it by hand (MD5 {md5}), "
            f"place it at {target} and run {retry} again (an interrupted download resumes where it stopped)."
        ) from None
    except OSError as error:
        raise DataError(f"could not write {partial} ({error}); free disk space or choose another --data-dir.") from None
    _require_md5(partial, md5, f"the file downloaded from {url}", target, retry)
    os.replace(partial, target)
    return target


def _require_md5(path: Path, md5: str, what: str, target: Path, retry: str) -> None:
    """Delete a file whose checksum is wrong, so neither we nor a loader ever trust it."""
    actual = file_md5(path)
    if actual != md5:
        path.unlink()
        raise DataError(
            f"{what} has MD5 {actual}, not the expected {md5}, so it was deleted; run {retry} again "
            f"to download it, or place a correct copy at {target}."
        )


def _download(url: str, partial: Path, timeout: float) -> None:
    """Stream `url` into `partial`, continuing an earlier partial download when the server allows ranges."""
    start = partial.stat().st_size if partial.is_file() else 0
    response, start = _open(url, start, timeout)
    if response is None:  # the server says the .part already holds every byte
        return
    with response, open(partial, "ab" if start else "wb") as sink:
        length = response.headers.get("Content-Length")
        total = start + int(length) if length else None
        name = partial.name.removesuffix(".part")
        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=name, disable=not sys.stderr.isatty())
        with bar:
            while chunk := response.read(CHUNK_BYTES):
                sink.write(chunk)
                bar.update(len(chunk))


def _open(url: str, start: int, timeout: float) -> tuple[http.client.HTTPResponse | None, int]:
    """The response and the offset it continues from: only a 206 for our exact offset resumes, anything else restarts."""
    headers = {"User-Agent": "lrsflows-download"} | ({"Range": f"bytes={start}-"} if start else {})
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as error:
        if error.code == 416 and start:
            error.close()
            return None, start
        raise
    if not start or response.status == 200:
        return response, 0
    if response.status == 206 and response.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
        return response, start
    response.close()
    return _open(url, 0, timeout)


def extract_archive(archive: Path, top: str, destination: Path, retry: str) -> Extraction:
    """Unpack the files under the archive's `top/` folder into `destination`, leaving out `._*` files, unsafe members
    and files already there (`retry` is the command named when the archive is damaged)."""
    result = Extraction()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                _extract_member(tar, member, top, destination, result)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(f"{archive} cannot be unpacked ({error}); delete it and run {retry} again.") from None
    except OSError as error:
        raise DataError(
            f"could not unpack {archive} into {destination} ({error}); free disk space or choose another --data-dir."
        ) from None
    return result


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, top: str, root: Path, result: Extraction) -> None:
    """Refuse an unsafe member, skip one outside top/, keep a file already there at full size, else write it atomically."""
    parts = PurePosixPath(member.name).parts
    if PurePosixPath(member.name).is_absolute() or ".." in parts or not (member.isfile() or member.isdir()):
        result.refused.append(member.name)
        return
    if member.isdir() or len(parts) < 2 or parts[0] != top or any(part.startswith("._") for part in parts):
        return  # folders are made for the files they hold; macOS resource forks and files outside top/ are not ours
    relative = PurePosixPath(*parts[1:])
    target = root.joinpath(*relative.parts)
    if target.is_file() and target.stat().st_size == member.size:
        result.kept.append(str(relative))
        return
    temporary = relative.with_name(f".{relative.name}.part")
    # The 'data' filter still guards the write (stays inside root, sane permissions).
    tar.extract(member.replace(name=str(temporary)), root, filter="data")
    os.replace(root / temporary, target)
    result.extracted.append(str(relative))
