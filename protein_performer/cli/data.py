"""``protein-performer-data``: prepare a token store, corpus statistics, splits, downloads.

    protein-performer-data prepare INPUT.fasta.gz [...] --out DIR [--min-length N]
        [--max-length N] [--dedupe] [--on-invalid {error,skip}] [--remove-gaps] [--overwrite]
    protein-performer-data stream-prepare {STORE_DIR | INPUT.fasta.gz [...]} --out DIR
        [--shard-mb 64] [--block-proteins 1024] [--overwrite] [FASTA reading options]
    protein-performer-data stats INPUT [...] [--out DIR]
    protein-performer-data split INPUT [...] --out DIR [--fractions train=0.9,valid=0.05,test=0.05]
        [--clusters TSV] [--seed N]
    protein-performer-data download {swissprot,trembl,uniref50,uniref90} --out DIR
        [--base-url URL] [--md5 HEX | --sha256 HEX | --checksum-url URL | --no-verify]
    protein-performer-data fetch-benchmarks --out DIR [--only NAME ...] [--index-url URL]
        [--find-links DIR] [--keep-archives]

Bad input (a malformed FASTA file, a missing store, a checksum mismatch) ends with one line
on stderr and exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from protein_performer.data.fasta.options import ReadOptions

from protein_performer.cli.task import USER_ERRORS, report

PROG = "protein-performer-data"


def _read_options(args: argparse.Namespace) -> ReadOptions:
    """The FASTA reading options the command line gave (filters: where the command has them)."""
    from protein_performer.data.fasta.options import ReadOptions

    filters = dict(min_length=1, max_length=None, dedupe=False)
    given = {k: getattr(args, k) for k in filters if hasattr(args, k)}
    return ReadOptions(
        **{**filters, **given}, on_invalid=args.on_invalid, remove_gaps=args.remove_gaps
    )


def _add_read_options(p: argparse.ArgumentParser, *, filters: bool = True) -> None:
    if filters:
        p.add_argument("--min-length", type=int, default=1, help="drop shorter proteins")
        p.add_argument("--max-length", type=int, default=None, help="drop longer proteins")
        p.add_argument("--dedupe", action="store_true", help="drop exact duplicate sequences")
    p.add_argument(
        "--on-invalid",
        choices=["error", "skip"],
        default="error",
        help="malformed records: stop with an error (default) or skip and count them",
    )
    p.add_argument(
        "--remove-gaps",
        action="store_true",
        help="delete '-' and '.' (aligned input) instead of rejecting them",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="FASTA -> memory-mapped token store")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="FASTA files, plain or gzip")
    p.add_argument("--out", required=True, help="store directory to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    _add_read_options(p)

    p = sub.add_parser(
        "stream-prepare", help="FASTA or a prepared store -> WebDataset shards for streaming"
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="one prepared store directory, or FASTA files (plain or gzip)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="shard directory to create (copy it to object storage afterwards)",
    )
    p.add_argument("--shard-mb", type=float, default=64.0, help="shard size in MB (default 64)")
    p.add_argument(
        "--block-proteins", type=int, default=1024, help="proteins per tar sample (default 1024)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing shard set")
    _add_read_options(p)

    p = sub.add_parser("stats", help="counts, length histogram, residue frequencies")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="FASTA files or one store directory")
    p.add_argument("--out", default=None, help="directory for stats.json, CSV tables, stats.png")
    _add_read_options(p)

    p = sub.add_parser("split", help="random or cluster-based train/valid/test FASTA files")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="FASTA files")
    p.add_argument("--out", required=True, help="directory for <split>.fasta.gz")
    p.add_argument(
        "--fractions",
        default="train=0.9,valid=0.05,test=0.05",
        help="name=fraction,... summing to 1 (default %(default)s)",
    )
    p.add_argument(
        "--clusters",
        default=None,
        metavar="TSV",
        help="representative<TAB>member TSV: keep whole clusters in one split",
    )
    p.add_argument("--seed", type=int, default=0)
    _add_read_options(p, filters=False)

    from protein_performer.data.corpus.download import DATASETS, UNIPROT_BASE

    p = sub.add_parser("download", help="fetch a UniProt release file (resumable, verified)")
    p.add_argument("name", choices=sorted(DATASETS))
    p.add_argument("--out", required=True, help="directory to download into")
    p.add_argument("--base-url", default=UNIPROT_BASE, help="UniProt mirror (default %(default)s)")
    p.add_argument("--url", default=None, help="download this URL instead")
    check = p.add_mutually_exclusive_group()
    check.add_argument("--md5", default=None, help="expected MD5 hex digest")
    check.add_argument("--sha256", default=None, help="expected SHA-256 hex digest")
    check.add_argument(
        "--checksum-url",
        default="auto",
        help="md5sum-style or metalink file (URL or path); default: "
        "RELEASE.metalink beside the file",
    )
    check.add_argument("--no-verify", action="store_true", help="skip the checksum")
    p.add_argument("--retries", type=int, default=5)

    from protein_performer.data.corpus.benchmark_sources import SOURCE_NAMES

    p = sub.add_parser(
        "fetch-benchmarks",
        help="real benchmark data (DMS, DSSP, aaanalysis) from pinned PyPI packages, verified",
    )
    p.add_argument("--out", required=True, help="directory for the extracted files (a cache)")
    p.add_argument("--only", nargs="+", choices=SOURCE_NAMES, default=None, help="these sources")
    p.add_argument("--index-url", default=None, help="a PyPI mirror (pip's --index-url)")
    p.add_argument("--find-links", default=None, help="a folder of archives (pip's --find-links)")
    p.add_argument(
        "--keep-archives", action="store_true", help="keep the downloaded archives in DIR/.archives"
    )
    return parser


def _prepare(args: argparse.Namespace) -> None:
    from protein_performer.data.storage.prepare import prepare_store

    report = prepare_store(
        args.inputs,
        args.out,
        _read_options(args),
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    print(report.summary())
    for example in report.read.examples:
        print(f"  skipped: {example}")
    _warn(report.read)


def _stream_prepare(args: argparse.Namespace) -> None:
    from protein_performer.data.storage.shard_writer import write_shards

    report = write_shards(
        args.inputs,
        args.out,
        _read_options(args),
        shard_bytes=int(args.shard_mb * 1e6),
        block_proteins=args.block_proteins,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(report.summary())
    for example in report.read.examples if report.read else []:
        print(f"  skipped: {example}")
    if report.read:
        _warn(report.read)


def _warn(read) -> None:
    """Kept input that looks wrong (nucleotides, repeated accessions): one stderr line each."""
    for warning in read.warnings():
        print(f"{PROG}: warning: {warning}", file=sys.stderr)


def _stats(args: argparse.Namespace) -> None:
    from protein_performer.data.corpus.stats import corpus_stats

    if len(args.inputs) == 1 and Path(args.inputs[0]).is_dir():
        stats = corpus_stats(args.inputs[0])  # a store: filtered when it was prepared
    else:
        stats = corpus_stats(args.inputs, _read_options(args))
    print(stats.to_text())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "stats.json").write_text(json.dumps(stats.summary, indent=1) + "\n")
        stats.residues.to_csv(out / "residues.csv", index=False)
        stats.length_histogram.to_csv(out / "length_histogram.csv", index=False)
        png = stats.plot(out / "stats.png")
        print(f"\nwrote {out / 'stats.json'}, residues.csv, length_histogram.csv, {png}")


def _split(args: argparse.Namespace) -> None:
    from protein_performer.data.corpus.split import cluster_split, random_split

    options = _read_options(args)
    if args.clusters:
        report = cluster_split(
            args.inputs, args.clusters, args.out, args.fractions, args.seed, options=options
        )
    else:
        report = random_split(args.inputs, args.out, args.fractions, args.seed, options=options)
    print(report.summary())


def _download(args: argparse.Namespace) -> None:
    from protein_performer.data.corpus.download import download

    result = download(
        args.name,
        args.out,
        base_url=args.base_url,
        url=args.url,
        md5=args.md5,
        sha256=args.sha256,
        checksum_url=None if args.no_verify else args.checksum_url,
        verify=not args.no_verify,
        retries=args.retries,
        progress=not args.quiet,
    )
    print(result.summary())


def _fetch_benchmarks(args: argparse.Namespace) -> None:
    from protein_performer.data.corpus.benchmark_fetch import fetch_benchmarks

    result = fetch_benchmarks(
        args.out,
        only=tuple(args.only) if args.only else None,
        index_url=args.index_url,
        find_links=args.find_links,
        keep_archives=args.keep_archives,
    )
    print(result.summary())


COMMANDS = {
    "prepare": _prepare,
    "stream-prepare": _stream_prepare,
    "stats": _stats,
    "split": _split,
    "download": _download,
    "fetch-benchmarks": _fetch_benchmarks,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("min_length", "max_length"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    lo, hi = getattr(args, "min_length", None), getattr(args, "max_length", None)
    if lo is not None and hi is not None and hi < lo:
        parser.error(f"--max-length ({hi}) must be >= --min-length ({lo})")
    if args.command == "stream-prepare" and (args.shard_mb <= 0 or args.block_proteins < 1):
        parser.error(
            f"--shard-mb must be > 0 and --block-proteins >= 1, got {args.shard_mb} "
            f"and {args.block_proteins}"
        )
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s")
    try:
        COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        return report(PROG, exc)
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
