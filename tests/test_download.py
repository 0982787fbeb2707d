"""The MAF archive downloader against a real local HTTP server serving a small real data.tar.gz."""

import hashlib
import io
import socket
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from lrsflows.data.download import download_maf
from lrsflows.data.errors import DataError
from lrsflows.data.tabular import load_tabular

REPO = Path(__file__).resolve().parents[1]


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
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
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        link = tarfile.TarInfo("data/miniboone/link.npy")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    return buffer.getvalue(), miniboone


class ArchiveHandler(BaseHTTPRequestHandler):
    """Serves `payload` at any path; honours `Range: bytes=N-` with 206 (or ignores it with 200) and 416 past the end."""

    payload = b""
    honour_range = True
    ranges_seen: list

    def do_GET(self):
        requested = self.headers.get("Range")
        self.ranges_seen.append(requested)
        start = int(requested[len("bytes=") : -1]) if requested and self.honour_range else 0
        if start >= len(self.payload) and start:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(self.payload)}")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        self.send_header("Content-Length", str(len(self.payload) - start))
        self.end_headers()
        self.wfile.write(self.payload[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    payload, miniboone = build_archive(tmp_path)
    handler = type("Handler", (ArchiveHandler,), {"payload": payload, "ranges_seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{httpd.server_address[1]}/records/1161203/files/data.tar.gz"
    handler.md5 = hashlib.md5(payload).hexdigest()
    handler.miniboone = miniboone
    yield handler
    httpd.shutdown()
    httpd.server_close()


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
    assert sorted(result.refused) == sorted(["data/../evil", str(tmp_path / "absolute-evil"), "data/miniboone/link.npy"])
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
    script = [sys.executable, str(REPO / "scripts" / "download_data.py")]
    good = subprocess.Popen(
        script + ["--data-dir", str(tmp_path / "good"), "--url", server.url, "--md5", server.md5],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    bad = subprocess.Popen(
        script + ["--data-dir", str(tmp_path / "bad"), "--url", closed_port_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    good_out, good_err = good.communicate(timeout=60)
    bad_out, bad_err = bad.communicate(timeout=60)
    assert good.returncode == 0, good_err
    assert (tmp_path / "good" / "miniboone" / "data.npy").is_file()
    assert "1 files unpacked" in good_out
    assert bad.returncode == 1
    assert "Traceback" not in bad_err and len(bad_err.strip().splitlines()) == 1
    assert bad_err.startswith(f"could not download the MAF archive from {closed_port_url}")
