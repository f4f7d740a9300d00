"""download(): resume with HTTP Range and checksum verification, against 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from protein_performer.data.corpus.download import (
    DATASETS,
    ChecksumError,
    DownloadError,
    download,
    parse_checksum_file,
)
from protein_performer.data.fasta.reading import load_proteins

PAYLOAD = gzip.compress(
    b"".join(b">P%05d GO=GO:1\n%s\n" % (i, b"MKVLAGHW" * (i % 9 + 1)) for i in range(2000))
)
PATH = "/" + DATASETS["swissprot"]
MD5 = hashlib.md5(PAYLOAD).hexdigest()
METALINK = f"""<?xml version="1.0"?><metalink><files>
<file name="other.gz"><verification><hash type="md5">{"0" * 32}</hash></verification></file>
<file name="uniprot_sprot.fasta.gz"><size>{len(PAYLOAD)}</size>
<verification><hash type="md5">{MD5}</hash></verification></file></files></metalink>"""


class _Handler(BaseHTTPRequestHandler):
    """Serves PAYLOAD with Range support; `cut_first` closes the first full response early."""

    server: _Server

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        if self.path == PATH.rsplit("/", 1)[0] + "/RELEASE.metalink":
            if srv.metalink is None:
                self.send_error(404)
                return
            body = srv.metalink.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path != PATH:
            self.send_error(404)
            return
        data = srv.payload
        rng = None if srv.ignore_range else self.headers.get("Range")
        start = 0
        if rng:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        body = data[start:]
        if srv.cut_first and not rng:
            srv.cut_first = False
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    payload = PAYLOAD
    metalink: str | None = METALINK
    cut_first = False
    ignore_range = False  # answer every request with the whole file (200)

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str | None]] = []


@pytest.fixture()
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def test_parse_checksum_file() -> None:
    assert parse_checksum_file(METALINK, "uniprot_sprot.fasta.gz") == ("md5", MD5)
    assert parse_checksum_file(f"{MD5}  uniprot_sprot.fasta.gz\n", "uniprot_sprot.fasta.gz") == (
        "md5",
        MD5,
    )
    assert parse_checksum_file(f"MD5 (x.gz) = {MD5}", "x.gz") == ("md5", MD5)
    assert parse_checksum_file(METALINK, "absent.gz") is None


def test_download_verified_with_metalink(server, tmp_path: Path) -> None:
    r = download("swissprot", tmp_path, base_url=server.base, progress=False)
    assert r.path.read_bytes() == PAYLOAD and r.algorithm == "md5" and r.digest == MD5
    assert not list(tmp_path.glob("*.part*"))
    src, rep = load_proteins([r.path])
    assert rep.proteins == 2000
    # a second call finds the finished file and only verifies it
    n = len(server.requests)
    download("swissprot", tmp_path, base_url=server.base, progress=False)
    assert [p for p, _ in server.requests[n:]] == [PATH.rsplit("/", 1)[0] + "/RELEASE.metalink"]


def test_interrupted_download_resumes_in_the_same_call(server, tmp_path: Path) -> None:
    server.cut_first = True
    # small reads: a broken read loses at most one chunk, the rest is resumed
    r = download(
        "swissprot", tmp_path, base_url=server.base, md5=MD5, progress=False, chunk_size=256
    )
    assert r.path.read_bytes() == PAYLOAD
    ranges = [rng for p, rng in server.requests if p == PATH]
    assert ranges[0] is None and len(ranges) == 2
    start = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= len(PAYLOAD) // 3


def test_leftover_part_file_resumes(server, tmp_path: Path) -> None:
    part = tmp_path / "uniprot_sprot.fasta.gz.part"
    part.write_bytes(PAYLOAD[:1000])
    r = download("swissprot", tmp_path, base_url=server.base, progress=False)
    assert r.resumed_from == 1000 and r.path.read_bytes() == PAYLOAD
    assert (PATH, "bytes=1000-") in server.requests


def test_checksum_mismatch(server, tmp_path: Path) -> None:
    with pytest.raises(ChecksumError, match=f"md5 mismatch.*expected {'f' * 32}, got {MD5}"):
        download("swissprot", tmp_path, base_url=server.base, md5="f" * 32, progress=False)
    assert not (tmp_path / "uniprot_sprot.fasta.gz").exists()
    assert not (tmp_path / "uniprot_sprot.fasta.gz.part").exists()
    # corrupted bytes in a resumed part are caught too
    part = tmp_path / "uniprot_sprot.fasta.gz.part"
    part.write_bytes(b"\0" * 500)
    with pytest.raises(ChecksumError):
        download("swissprot", tmp_path, base_url=server.base, progress=False)


def test_missing_checksum_file_and_http_errors(server, tmp_path: Path) -> None:
    server.metalink = None
    r = download("swissprot", tmp_path / "a", base_url=server.base, progress=False)
    assert r.algorithm is None and r.path.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="checksum file"):
        download(
            "swissprot",
            tmp_path / "b",
            base_url=server.base,
            progress=False,
            checksum_url=server.base + "/nope.md5",
        )
    with pytest.raises(DownloadError, match="HTTP 404"):
        download("uniref50", tmp_path / "c", base_url=server.base, verify=False, progress=False)
    with pytest.raises(ValueError, match="unknown dataset"):
        download("pdb", tmp_path)


def test_server_ignoring_the_resume_request_starts_over(server, tmp_path: Path) -> None:
    """A 200 answer to a Range request rewrites the file from byte 0: the summary says it
    started over (it used to say "resumed at 1,000 bytes")."""
    part = tmp_path / "uniprot_sprot.fasta.gz.part"
    part.write_bytes(b"\0" * 1000)
    server.ignore_range = True
    r = download("swissprot", tmp_path, base_url=server.base, progress=False)
    assert r.path.read_bytes() == PAYLOAD and r.resumed_from == 0 and r.restarted
    assert "started over" in r.summary() and "resumed at" not in r.summary()
    # and when the transfer that started over is cut and resumed (ignored again) in this call
    r.path.unlink()
    part.write_bytes(b"\0" * 1000)
    server.cut_first = True
    r = download("swissprot", tmp_path, base_url=server.base, progress=False, chunk_size=256)
    assert r.path.read_bytes() == PAYLOAD and r.resumed_from == 0 and "started over" in r.summary()
