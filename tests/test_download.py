"""The MAF archive downloader against a real local HTTP server serving a small real data.tar.gz."""

import gzip
import hashlib
import io
import pickle
import socket
import struct
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from lrsflows.data.download import download_cifar10, download_maf, download_mnist
from lrsflows.data.errors import DataError
from lrsflows.data.images import load_image_splits
from lrsflows.data.tabular import load_tabular


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def tar_gz(members, symlinks=()):
    """A gzip tarball of (name, payload) regular files, then (name, target) symbolic links."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        for name, target in symlinks:
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            tar.addfile(link)
    return buffer.getvalue()


def build_archive(escape_to: Path):
    """A data.tar.gz like Zenodo's (data/ tree, AppleDouble companions) plus three unsafe members."""
    miniboone = np.random.default_rng(0).normal(size=(60, 43))
    members = [
        ("data/miniboone/data.npy", npy_bytes(miniboone)),
        ("data/miniboone/._data.npy", b"\x00\x05\x16\x07Mac OS X".ljust(4096, b"\x00")),
        ("._data", b"top-level resource fork"),
        ("data/../evil", b"escaped through .."),
        (str(escape_to / "absolute-evil"), b"escaped through an absolute path"),
    ]
    return tar_gz(members, symlinks=[("data/miniboone/link.npy", "/etc/passwd")]), miniboone


class FileHandler(BaseHTTPRequestHandler):
    """Serves `files` by URL path, else 404; honours `Range: bytes=N-` with 206 (or ignores it: 200), 416 past the end."""

    files: dict
    honour_range = True
    ranges_seen: list

    def do_GET(self):
        payload = self.files.get(self.path)
        if payload is None:
            self.send_error(404)
            return
        requested = self.headers.get("Range")
        self.ranges_seen.append(requested)
        start = int(requested[len("bytes=") : -1]) if requested and self.honour_range else 0
        if start >= len(payload) and start:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(payload)}")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        self.send_header("Content-Length", str(len(payload) - start))
        self.end_headers()
        self.wfile.write(payload[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """Start a local HTTP server for a {path: bytes} map; returns its handler class, with `base` = its root URL."""
    servers = []

    def start(files):
        handler = type("Handler", (FileHandler,), {"files": files, "ranges_seen": []})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        handler.base = f"http://127.0.0.1:{httpd.server_address[1]}"
        return handler

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server(tmp_path, serve):
    payload, miniboone = build_archive(tmp_path)
    handler = serve({"/records/1161203/files/data.tar.gz": payload})
    handler.url = f"{handler.base}/records/1161203/files/data.tar.gz"
    handler.payload = payload
    handler.md5 = hashlib.md5(payload).hexdigest()
    handler.miniboone = miniboone
    return handler


@pytest.fixture
def closed_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/data.tar.gz"


def test_download_verifies_and_unpacks_only_safe_data_files(tmp_path, server):
    root = tmp_path / "root"
    result = download_maf(root, server.url, server.md5)
    assert hashlib.md5((root / "data.tar.gz").read_bytes()).hexdigest() == server.md5
    assert not (root / "data.tar.gz.part").exists()
    assert result.extracted == ["miniboone/data.npy"]
    assert sorted(result.refused) == sorted(
        ["data/../evil", str(tmp_path / "absolute-evil"), "data/miniboone/link.npy"]
    )
    assert sorted(path.name for path in (root / "miniboone").iterdir()) == ["data.npy"]  # no ._ file, no link
    assert not (tmp_path / "evil").exists() and not (tmp_path / "absolute-evil").exists()
    assert not (root / "._data").exists()
    np.testing.assert_array_equal(np.load(root / "miniboone" / "data.npy"), server.miniboone)
    assert load_tabular("miniboone", root)[0].shape == (49, 43)


def test_second_run_reuses_the_verified_archive_and_present_files(tmp_path, server):
    download_maf(tmp_path, server.url, server.md5)
    server.ranges_seen.clear()
    result = download_maf(tmp_path, server.url, server.md5)
    assert server.ranges_seen == []  # no request at all
    assert result.extracted == [] and result.kept == ["miniboone/data.npy"]


def test_truncated_part_is_resumed_with_a_range_request(tmp_path, server):
    (tmp_path / "data.tar.gz.part").write_bytes(server.payload[:1000])
    download_maf(tmp_path, server.url, server.md5)
    assert server.ranges_seen == ["bytes=1000-"]
    assert hashlib.md5((tmp_path / "data.tar.gz").read_bytes()).hexdigest() == server.md5


def test_complete_part_is_accepted_when_the_server_answers_416(tmp_path, server):
    (tmp_path / "data.tar.gz.part").write_bytes(server.payload)
    download_maf(tmp_path, server.url, server.md5)
    assert server.ranges_seen == [f"bytes={len(server.payload)}-"]
    assert (tmp_path / "miniboone" / "data.npy").is_file()


def test_server_ignoring_the_range_restarts_from_scratch(tmp_path, server):
    server.honour_range = False
    (tmp_path / "data.tar.gz.part").write_bytes(b"stale bytes from another file")
    download_maf(tmp_path, server.url, server.md5)
    assert hashlib.md5((tmp_path / "data.tar.gz").read_bytes()).hexdigest() == server.md5


def test_wrong_md5_is_an_error_and_leaves_no_archive(tmp_path, server):
    with pytest.raises(DataError, match=f"has MD5 {server.md5}, not the expected 0+, so it was deleted"):
        download_maf(tmp_path, server.url, "0" * 32)
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_existing_archive_with_wrong_md5_is_deleted(tmp_path, server):
    (tmp_path / "data.tar.gz").write_bytes(b"not the archive")
    with pytest.raises(DataError, match="data.tar.gz has MD5 .* so it was deleted; run `make data` again"):
        download_maf(tmp_path, server.url, server.md5)
    assert not (tmp_path / "data.tar.gz").exists()


def test_unreachable_url_says_where_to_put_a_manual_download(tmp_path, closed_port_url):
    with pytest.raises(DataError) as error:
        download_maf(tmp_path, closed_port_url, "9b9c9b0375315ad270eba4ce80c093ab", timeout=5)
    message = str(error.value)
    assert message.startswith(f"could not download the MAF archive from {closed_port_url}")
    assert "MD5 9b9c9b0375315ad270eba4ce80c093ab" in message and f"place it at {tmp_path / 'data.tar.gz'}" in message


def test_script_downloads_and_fails_with_one_line(tmp_path, server, closed_port_url):
    script = [str(Path(sys.executable).with_name("lrsflows-data"))]  # the console script beside this Python
    good = subprocess.Popen(
        script + ["--data-dir", str(tmp_path / "good"), "--url", server.url, "--md5", server.md5],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    bad = subprocess.Popen(
        script + ["--data-dir", str(tmp_path / "bad"), "--url", closed_port_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    good_out, good_err = good.communicate(timeout=60)
    bad_out, bad_err = bad.communicate(timeout=60)
    assert good.returncode == 0, good_err
    assert (tmp_path / "good" / "miniboone" / "data.npy").is_file()
    assert "1 files unpacked" in good_out
    assert bad.returncode == 1
    assert "Traceback" not in bad_err and len(bad_err.strip().splitlines()) == 1
    assert bad_err.startswith(f"could not download the MAF archive from {closed_port_url}")


# ---------------------------------------------------------------------------------------------- CIFAR-10, MNIST, ImageNet

CIFAR_BATCHES = [f"data_batch_{number}" for number in range(1, 6)] + ["test_batch"]


@pytest.fixture
def cifar_server(serve):
    """The Toronto tarball's layout: cifar-10-batches-py/ with six small real batches, batches.meta, readme.html."""
    rng = np.random.default_rng(1)
    batches = {name: rng.integers(0, 256, size=(2, 3072), dtype=np.uint8) for name in CIFAR_BATCHES}
    members = [
        (f"cifar-10-batches-py/{name}", pickle.dumps({"data": data, "labels": [0, 1]}, protocol=2))
        for name, data in batches.items()
    ]
    members += [("cifar-10-batches-py/batches.meta", b"meta"), ("cifar-10-batches-py/readme.html", b"<html>")]
    handler = serve({"/~kriz/cifar-10-python.tar.gz": tar_gz(members)})
    handler.url = f"{handler.base}/~kriz/cifar-10-python.tar.gz"
    handler.md5 = hashlib.md5(handler.files["/~kriz/cifar-10-python.tar.gz"]).hexdigest()
    handler.batches = batches
    return handler


def test_cifar10_download_verifies_and_unpacks_where_the_reader_looks(tmp_path, cifar_server):
    result = download_cifar10(tmp_path, cifar_server.url, cifar_server.md5)
    folder = tmp_path / "cifar-10"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cifar-10"]
    assert sorted(path.name for path in folder.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    assert hashlib.md5((folder / "cifar-10-python.tar.gz").read_bytes()).hexdigest() == cifar_server.md5
    assert sorted(result.extracted) == sorted(CIFAR_BATCHES + ["batches.meta", "readme.html"])
    test = load_image_splits("cifar10", tmp_path, 0.1, 0).test
    np.testing.assert_array_equal(test[1].numpy().reshape(-1), cifar_server.batches["test_batch"][1])


def test_cifar10_wrong_md5_leaves_no_file(tmp_path, cifar_server):
    command = f"`lrsflows-data --dataset cifar10 --data-dir {tmp_path}`"
    expected = f"has MD5 {cifar_server.md5}, not the expected 0+, so it was deleted; run {command} again"
    with pytest.raises(DataError, match=expected):
        download_cifar10(tmp_path, cifar_server.url, "0" * 32)
    assert list((tmp_path / "cifar-10").iterdir()) == []


def idx_gz(count, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    return gzip.compress(struct.pack(">IIII", 0x00000803, count, 28, 28) + pixels.tobytes()), pixels


@pytest.fixture
def mnist_server(serve):
    train, train_pixels = idx_gz(10, 2)
    test, test_pixels = idx_gz(3, 3)
    files = {
        "train-images-idx3-ubyte.gz": train,
        "train-labels-idx1-ubyte.gz": b"train labels",
        "t10k-images-idx3-ubyte.gz": test,
        "t10k-labels-idx1-ubyte.gz": b"test labels",
    }
    handler = serve({f"/mnist/{name}": payload for name, payload in files.items()})
    handler.url = f"{handler.base}/mnist/"
    handler.md5s = {name: hashlib.md5(payload).hexdigest() for name, payload in files.items()}
    handler.test_pixels = test_pixels
    return handler


def test_mnist_download_checks_each_file_and_keeps_the_gzip(tmp_path, mnist_server):
    paths = download_mnist(tmp_path, mnist_server.url, mnist_server.md5s)
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    assert paths == [raw / name for name in mnist_server.md5s]
    assert all(hashlib.md5(path.read_bytes()).hexdigest() == mnist_server.md5s[path.name] for path in paths)
    test = load_image_splits("mnist", tmp_path, 0.1, 0).test
    np.testing.assert_array_equal(test[2][0].numpy(), mnist_server.test_pixels[2])


def test_mnist_file_with_a_wrong_md5_is_deleted_and_named(tmp_path, mnist_server):
    md5s = mnist_server.md5s | {"train-labels-idx1-ubyte.gz": "0" * 32}
    with pytest.raises(
        DataError, match=f"the file downloaded from {mnist_server.url}train-labels-idx1-ubyte.gz has MD5"
    ):
        download_mnist(tmp_path, mnist_server.url, md5s)
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    assert sorted(path.name for path in raw.iterdir()) == ["train-images-idx3-ubyte.gz"]


@pytest.fixture
def script_main():
    from lrsflows.data.command import main

    return main


def test_script_downloads_cifar10_and_explains_imagenet(tmp_path, cifar_server, script_main, capsys):
    argv = ["--dataset", "cifar10", "--data-dir", str(tmp_path), "--url", cifar_server.url, "--md5", cifar_server.md5]
    assert script_main(argv) == 0
    assert capsys.readouterr().out == f"{tmp_path}/cifar-10/cifar-10-batches-py: 8 files unpacked, 0 already present.\n"
    assert script_main(["--dataset", "imagenet32", "--data-dir", str(tmp_path)]) == 1
    message = capsys.readouterr().err
    assert message.startswith("imagenet32 cannot be downloaded automatically") and len(message.splitlines()) == 1
    assert f"so that {tmp_path}/imagenet32 holds the PNG folders train_32x32/ and valid_32x32/" in message
    with pytest.raises(SystemExit):
        script_main(["--dataset", "mnist", "--md5", "0" * 32])
    assert "--md5 applies to maf and cifar10, not mnist" in capsys.readouterr().err
