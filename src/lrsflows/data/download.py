"""Download, verify and unpack the MAF data archive (Zenodo record 1161203) into the data root.

Nothing else in the package downloads: loaders only read, and `make data` runs this once.
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

MAF_URL = "https://zenodo.org/records/1161203/files/data.tar.gz?download=1"
MAF_MD5 = "9b9c9b0375315ad270eba4ce80c093ab"
ARCHIVE_NAME = "data.tar.gz"
ARCHIVE_TOP = "data"
CHUNK_BYTES = 1 << 20
NETWORK_ERRORS = (URLError, TimeoutError, ConnectionError, ssl.SSLError, http.client.HTTPException)


@dataclass
class Extraction:
    """What unpacking did, as paths relative to the data root (refused: archive member names)."""

    extracted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def download_maf(data_dir: str | Path, url: str = MAF_URL, md5: str = MAF_MD5, timeout: float = 60.0) -> Extraction:
    """Fetch the archive (or reuse a verified one) into data_dir and unpack its data/ tree there."""
    root = Path(data_dir).expanduser().absolute()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the data folder {root} ({error}); choose another one with --data-dir.") from None
    archive = fetch_archive(url, root / ARCHIVE_NAME, md5.lower(), timeout)
    return extract_maf_archive(archive, root)


def file_md5(path: Path) -> str:
    """MD5 hex digest, streamed so an 800 MB archive never sits in memory."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_archive(url: str, archive: Path, md5: str, timeout: float = 60.0) -> Path:
    """The verified archive at `archive`: reused if present, else downloaded to a resumable .part, checked, renamed."""
    if archive.is_file():
        _require_md5(archive, md5, f"{archive}")
        return archive
    partial = archive.with_name(archive.name + ".part")
    try:
        _download(url, partial, timeout)
    except NETWORK_ERRORS as error:
        raise DataError(
            f"could not download the MAF archive from {url} ({error}); download it by hand (MD5 {md5}), "
            f"place it at {archive} and run `make data` again (an interrupted download resumes where it stopped)."
        ) from None
    except OSError as error:
        raise DataError(f"could not write {partial} ({error}); free disk space or choose another --data-dir.") from None
    _require_md5(partial, md5, f"the file downloaded from {url}")
    os.replace(partial, archive)
    return archive


def _require_md5(path: Path, md5: str, what: str) -> None:
    """Delete a file whose checksum is wrong, so neither we nor a loader ever trust it."""
    actual = file_md5(path)
    if actual != md5:
        path.unlink()
        raise DataError(
            f"{what} has MD5 {actual}, not the expected {md5}, so it was deleted; run `make data` again "
            f"to download it, or place a correct copy at {path.with_name(ARCHIVE_NAME)}."
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
        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=ARCHIVE_NAME, disable=not sys.stderr.isatty())
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


def extract_maf_archive(archive: Path, data_dir: Path) -> Extraction:
    """Unpack the files under data/ into data_dir, leaving out `._*` files, unsafe members and files already there."""
    result = Extraction()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                _extract_member(tar, member, data_dir, result)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(f"{archive} cannot be unpacked ({error}); delete it and run `make data` again.") from None
    except OSError as error:
        raise DataError(
            f"could not unpack {archive} into {data_dir} ({error}); free disk space or choose another --data-dir."
        ) from None
    return result


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, result: Extraction) -> None:
    """Refuse an unsafe member, skip one outside data/, keep a file already there at full size, else write it atomically."""
    parts = PurePosixPath(member.name).parts
    if PurePosixPath(member.name).is_absolute() or ".." in parts or not (member.isfile() or member.isdir()):
        result.refused.append(member.name)
        return
    if member.isdir() or len(parts) < 2 or parts[0] != ARCHIVE_TOP or any(part.startswith("._") for part in parts):
        return  # folders are made for the files they hold; macOS resource forks and files outside data/ are not ours
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
