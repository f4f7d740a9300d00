"""The fault battery's driver: run a console script in-process (Hydra and all) and check
that it failed the way a user should see: exit status 2, one line on stderr, no traceback."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

# every console script of pyproject.toml -> its module in protein_performer.cli
SCRIPTS = {
    "protein-performer-train": "train",
    "protein-performer-eval": "evaluate",
    "protein-performer-embed": "embed",
    "protein-performer-score": "score",
    "protein-performer-analyze": "analyze",
    "protein-performer-data": "data",
    "protein-performer-generate": "generate",
    "protein-performer-study": "study",
}


def run_script(script: str, args: list[str], cwd: Path, monkeypatch, capsys) -> tuple[int, str]:
    """``script ARGS`` in-process from ``cwd`` (its run directory under ``cwd``);
    (exit status, stderr)."""
    module = importlib.import_module(f"protein_performer.cli.{SCRIPTS[script]}")
    monkeypatch.chdir(cwd)
    hydra = [] if script == "protein-performer-data" else [f"hydra.run.dir={cwd / 'run'}"]
    monkeypatch.setattr(sys, "argv", [script, *args, *hydra])
    capsys.readouterr()
    code = 0
    try:
        if script == "protein-performer-data":
            code = module.main(args)
        else:
            module.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, script: str, *names: str) -> str:
    """Exit status 2 and one line on stderr, no traceback, naming every one of ``names``."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, f"exit status {code}, stderr:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{err[-3000:]}"
    assert lines[0].startswith(f"{script}: error: "), lines[0]
    for name in names:
        assert name in lines[0], f"{name!r} not in: {lines[0]}"
    return lines[0]
