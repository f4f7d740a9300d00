"""Downloading UniProt release files with HTTP Range resume and checksum verification.

``download("swissprot", "data/raw")`` fetches ``uniprot_sprot.fasta.gz`` into ``data/raw``:
bytes go to ``<file>.part`` and the download continues from its size (``Range`` request,
guarded by ``If-Range`` with the server's ETag/Last-Modified) after an interruption, in the
same call (``retries``) or in a later one. The finished file is checked against an MD5 (or
SHA-256) digest -- given explicitly, or read from a checksum file: an ``md5sum``-style list
(``<hex>  <name>``) or a metalink XML, as UniProt publishes next to its release files
(``RELEASE.metalink``; the default). A mismatch deletes the partial file and raises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from protein_performer.data.fasta.report import PathLike
from protein_performer.errors import InputError
from protein_performer.progress import Progress

log = logging.getLogger(__name__)

UNIPROT_BASE = "https://ftp.uniprot.org/pub/databases/uniprot"

# name -> path below the base URL (the UniProt FTP layout, mirrored by its HTTPS server).
DATASETS: dict[str, str] = {
    "swissprot": "current_release/knowledgebase/complete/uniprot_sprot.fasta.gz",
    "trembl": "current_release/knowledgebase/complete/uniprot_trembl.fasta.gz",
    "uniref50": "uniref/uniref50/uniref50.fasta.gz",
    "uniref90": "uniref/uniref90/uniref90.fasta.gz",
}
CHECKSUM_FILE = "RELEASE.metalink"  # in the same directory as each file


class DownloadError(RuntimeError):
    """The server refused or the transfer kept failing."""


class ChecksumError(InputError):
    """The downloaded bytes do not match the published digest."""


@dataclass
class DownloadResult:
    path: Path
    bytes: int
    resumed_from: int  # bytes already present when this call started (0: fresh)
    algorithm: str | None  # digest checked ("md5", "sha256") or None
    digest: str | None
    seconds: float
    # the server ignored a resume request (or the file changed): the download started over
    restarted: bool = False

    def summary(self) -> str:
        check = f"{self.algorithm} {self.digest} verified" if self.algorithm else "not verified"
        resumed = f", resumed at {self.resumed_from:,} bytes" if self.resumed_from else ""
        if self.restarted:
            resumed = ", started over (the server ignored the resume request)"
        return f"{self.path}: {self.bytes:,} bytes{resumed}, {check}, {self.seconds:.1f} s"


def url_for(name: str, base_url: str = UNIPROT_BASE) -> str:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return base_url.rstrip("/") + "/" + DATASETS[name]


def parse_checksum_file(text: str, filename: str) -> tuple[str, str] | None:
    """(algorithm, hex digest) for ``filename`` from md5sum-style or metalink text."""
    if "<" in text:  # metalink: <file name="X"> ... <hash type="md5">hex</hash>
        for m in re.finditer(r'<file\s+name="([^"]+)"(.*?)</file>', text, re.S):
            if m.group(1) == filename:
                h = re.search(r'<hash\s+type="(md5|sha-?256)"\s*>\s*([0-9a-fA-F]+)\s*<', m.group(2))
                if h:
                    return h.group(1).replace("-", "").lower(), h.group(2).lower()
        return None
    for line in text.splitlines():
        parts = line.strip().split()
        if len(parts) >= 2 and parts[-1].lstrip("*") == filename:
            digest = parts[0].lower()
            algo = {32: "md5", 64: "sha256"}.get(len(digest))
            if algo and re.fullmatch(r"[0-9a-f]+", digest):
                return algo, digest
        m = re.match(r"MD5 \((.+)\) = ([0-9a-fA-F]{32})$", line.strip())  # BSD style
        if m and m.group(1) == filename:
            return "md5", m.group(2).lower()
    return None


def _fetch_checksum(
    session: requests.Session, source: str, filename: str, timeout: float
) -> tuple[str, str] | None:
    if re.match(r"https?://", source):
        resp = session.get(source, timeout=timeout)
        if resp.status_code != 200:
            raise DownloadError(f"checksum file {source}: HTTP {resp.status_code}")
        text = resp.text
    else:
        text = Path(source).read_text()
    return parse_checksum_file(text, filename)


def _hash_file(path: Path, algorithm: str) -> hashlib._Hash:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h


def download(
    name: str,
    out_dir: PathLike,
    *,
    base_url: str = UNIPROT_BASE,
    url: str | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    checksum_url: str | None = "auto",
    verify: bool = True,
    retries: int = 5,
    timeout: float = 60.0,
    chunk_size: int = 1 << 16,
    progress: bool = True,
    session: requests.Session | None = None,
) -> DownloadResult:
    """Fetch dataset ``name`` (swissprot, trembl, uniref50, uniref90) into ``out_dir``.

    ``url`` overrides the file's URL (then ``name`` only labels it). The digest is ``md5``
    or ``sha256`` when given, else read from ``checksum_url`` (a URL or local path;
    ``"auto"``: ``RELEASE.metalink`` beside the file, and a missing one only logs a
    warning); ``verify=False`` skips the check. An already complete file is verified and
    kept.
    """
    t0 = time.perf_counter()
    file_url = url or url_for(name, base_url)
    filename = file_url.rstrip("/").rsplit("/", 1)[-1]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = out / filename
    part = out / (filename + ".part")
    meta = out / (filename + ".part.json")
    session = session or requests.Session()

    expected: tuple[str, str] | None = None
    if verify:
        if md5 or sha256:
            expected = ("md5", md5.lower()) if md5 else ("sha256", sha256.lower())  # type: ignore[union-attr]
        elif checksum_url:
            source = (
                file_url.rsplit("/", 1)[0] + "/" + CHECKSUM_FILE
                if checksum_url == "auto"
                else checksum_url
            )
            try:
                expected = _fetch_checksum(session, source, filename, timeout)
            except (DownloadError, requests.RequestException, OSError) as exc:
                if checksum_url != "auto":
                    raise DownloadError(f"cannot read checksum file {source}: {exc}") from exc
                log.warning(
                    "no checksum published at %s (%s); %s is not verified", source, exc, filename
                )
            else:
                if expected is None:
                    msg = f"{source} lists no md5/sha256 for {filename}"
                    if checksum_url != "auto":
                        raise DownloadError(msg)
                    log.warning("%s; the file is not verified", msg)

    if final.exists():
        resumed = final.stat().st_size
        digest = _check(final, expected, file_url, keep_bad=True)
        return DownloadResult(
            final,
            final.stat().st_size,
            resumed,
            expected[0] if expected else None,
            digest,
            time.perf_counter() - t0,
        )

    resumed_from = part.stat().st_size if part.exists() else 0
    restarts: list[int] = []  # bytes thrown away each time the server ignored a resume
    attempt = 0
    while True:
        try:
            done = _transfer(session, file_url, part, meta, timeout, chunk_size, progress, restarts)
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"{file_url}: transfer failed {attempt} times ({exc}); run again to resume "
                    f"from the {part.stat().st_size if part.exists() else 0:,} bytes in {part}"
                ) from exc
            log.warning(
                "%s: interrupted (%s); resuming (attempt %d of %d)", file_url, exc, attempt, retries
            )
            time.sleep(min(2.0 ** (attempt - 1), 30.0) * 0.05)
            continue
        if done:
            break
    digest = _check(part, expected, file_url, keep_bad=False)
    part.replace(final)
    meta.unlink(missing_ok=True)
    return DownloadResult(
        final,
        final.stat().st_size,
        0 if restarts else resumed_from,
        expected[0] if expected else None,
        digest,
        time.perf_counter() - t0,
        bool(restarts),
    )


def _check(
    path: Path, expected: tuple[str, str] | None, file_url: str, *, keep_bad: bool
) -> str | None:
    if expected is None:
        return None
    algo, want = expected
    got = _hash_file(path, algo).hexdigest()
    if got != want:
        if not keep_bad:
            path.unlink(missing_ok=True)
        what = "kept for inspection" if keep_bad else "deleted; run again to download afresh"
        raise ChecksumError(
            f"{path}: {algo} mismatch for {file_url}: expected {want}, got {got} (file {what})"
        )
    return got


def _transfer(
    session: requests.Session,
    file_url: str,
    part: Path,
    meta: Path,
    timeout: float,
    chunk_size: int,
    progress: bool,
    restarts: list[int],
) -> bool:
    """One request: append to ``part`` from its current size. True when complete. A server
    that answers a resume request with the whole file starts it over: the bytes thrown away
    are appended to ``restarts``."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # byte offsets must be of the file itself
    validator = None
    if have and meta.exists():
        validator = json.loads(meta.read_text()).get("validator")
    if have:
        headers["Range"] = f"bytes={have}-"
        if validator:
            headers["If-Range"] = validator
    with session.get(file_url, headers=headers, stream=True, timeout=timeout) as resp:
        if resp.status_code == 416 and have:
            # Range not satisfiable: the part file already holds the whole file.
            return True
        if resp.status_code == 206:
            m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                raise DownloadError(
                    f"{file_url}: server answered an unexpected range "
                    f"{resp.headers.get('Content-Range')!r} for bytes={have}-"
                )
            total = int(m.group(3)) if m.group(3) != "*" else None
            mode = "ab"
        elif resp.status_code == 200:
            if have:
                restarts.append(have)
                log.warning(
                    "%s: server ignored the resume request (or the file changed); starting over",
                    file_url,
                )
            have = 0
            total = (
                int(resp.headers["Content-Length"]) if "Content-Length" in resp.headers else None
            )
            mode = "wb"
        else:
            raise DownloadError(f"{file_url}: HTTP {resp.status_code} {resp.reason}")
        new_validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        if mode == "wb" or new_validator:
            meta.write_text(json.dumps({"url": file_url, "validator": new_validator}))
        bar = Progress(total, part.name.removesuffix(".part"), enabled=progress)
        n = have
        bar.update_to(n)
        try:
            with open(part, mode) as f:
                for chunk in resp.iter_content(chunk_size):
                    f.write(chunk)
                    n += len(chunk)
                    bar.update_to(n)
        finally:
            bar.close()
        if total is not None and n < total:
            raise requests.exceptions.ChunkedEncodingError(
                f"connection closed at {n:,} of {total:,} bytes"
            )
    return True
