"""The package's floors (docs/architecture.md), read from the source with ``ast``: imports
point one way, downwards; no function-local import of the project's own modules outside
cli/ except to defer matplotlib; small modules (at most MAX_LINES lines)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "protein_performer"

# rank of each room (a top-level subpackage or module): a module imports its own room, rooms
# of a lower rank and rooms of its own rank, except in APART: those rooms stand beside each
# other (data/ knows nothing of attention, training/ nothing of the runner).
RANKS = {
    0: ["errors", "devices", "fields", "filenames", "jsonsafe", "progress", "seeding"],
    1: ["data", "attention"],
    2: ["masking", "objective"],  # they know the alphabet
    3: ["model"],
    4: ["training", "runner"],
    5: ["evaluation", "analysis", "benchmarks", "inference", "finetune", "hf"],
    6: ["study"],
    7: ["cli"],
    8: ["train"],  # ``python -m protein_performer.train``: the DDP relaunch entry point
}
RANK = {room: rank for rank, rooms in RANKS.items() for room in rooms}
APART = {1, 4}

MAX_LINES = 400
# the two sources allowed to be longer: the C++ causal FAVOR+ kernel, and the module of the
# causal FAVOR+ autograd Function (forward and backward belong together)
LONG = {"attention/favor/csrc/favor_causal.cpp", "attention/favor/causal.py"}

# function-local project imports that another branch removes (study/demo.py is being
# rewritten there); delete an entry once its file is clean.
PENDING_LOCAL: set[str] = set()


def _modules() -> dict[str, ast.Module]:
    return {
        p.relative_to(PACKAGE).as_posix(): ast.parse(p.read_text(), str(p))
        for p in sorted(PACKAGE.rglob("*.py"))
    }


MODULES = _modules()


def _room(rel: str) -> str:
    return rel.split("/")[0].removesuffix(".py")


def _project_imports(node: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted module) of every ``protein_performer`` import below ``node``: for
    ``from a.b import c``, ``a.b.c`` when that is a module, else ``a.b``."""
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            names = [
                f"{n.module}.{a.name}" if _path_of(f"{n.module}.{a.name}") else n.module
                for a in n.names
            ]
        elif isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        else:
            continue
        out += [(n.lineno, m) for m in dict.fromkeys(names) if m.startswith("protein_performer.")]
    return out


def _path_of(module: str) -> str | None:
    """The package-relative file of a dotted module, or None (not a module of the package)."""
    rel = "/".join(module.split(".")[1:])
    for cand in (f"{rel}.py", f"{rel}/__init__.py"):
        if cand in MODULES:
            return cand
    return None


def _top_level_imports(tree: ast.Module) -> list[ast.stmt]:
    """Import statements run when the module is imported (module body, if/try blocks)."""
    out: list[ast.stmt] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        s = todo.pop()
        if isinstance(s, (ast.Import, ast.ImportFrom)):
            out.append(s)
        elif isinstance(s, (ast.If, ast.Try)):
            if isinstance(s, ast.If) and "TYPE_CHECKING" in ast.unparse(s.test):
                continue
            todo += s.body + s.orelse + getattr(s, "finalbody", [])
            for h in getattr(s, "handlers", []):
                todo += h.body
    return out


@cache
def _loads_matplotlib(rel: str) -> bool:
    """True when importing the module imports matplotlib (itself or through the project)."""
    for s in _top_level_imports(MODULES[rel]):
        if isinstance(s, ast.ImportFrom):
            names = [s.module or ""]
        else:
            names = [a.name for a in s.names]
        if any(name.split(".")[0] == "matplotlib" for name in names):
            return True
        for _, module in _project_imports(s):
            path = _path_of(module)
            if path is not None and path != rel and _loads_matplotlib(path):
                return True
    return False


def test_no_function_local_project_imports_outside_cli():
    bad = []
    for rel, tree in MODULES.items():
        if _room(rel) == "cli" or rel in PENDING_LOCAL:
            continue
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for line, module in _project_imports(fn):
                path = _path_of(module)
                # deferring matplotlib is the one reason (plotting modules load it at import)
                if path is not None and not _loads_matplotlib(path):
                    bad.append(f"{rel}:{line} imports {module} inside {fn.name}()")
    assert not bad, "move these imports to module level:\n" + "\n".join(sorted(set(bad)))


def test_imports_point_down_the_floors():
    assert set(RANK) >= {_room(rel) for rel in MODULES if rel != "__init__.py"}
    bad = []
    for rel, tree in MODULES.items():
        room = _room(rel)
        if room == "__init__":
            continue
        for line, module in _project_imports(tree):
            target = module.split(".")[1]
            if target == room or (RANK[target] == RANK[room] and RANK[room] not in APART):
                continue
            if RANK[target] >= RANK[room]:
                bad.append(f"{rel}:{line} ({room}, floor {RANK[room]}) imports {module}")
    assert not bad, "imports must point down (docs/architecture.md):\n" + "\n".join(sorted(bad))


def test_data_knows_nothing_of_models():
    """data/ imports only itself and the floor under it (errors, progress, seeding...)."""
    allowed = {"data", *RANKS[0]}
    bad = [
        f"{rel}:{line} imports {module}"
        for rel, tree in MODULES.items()
        if _room(rel) == "data"
        for line, module in _project_imports(tree)
        if module.split(".")[1] not in allowed
    ]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_what_it_must_refuse():
    """A function-local import, and an upward one, are found in a known snippet."""
    tree = ast.parse(
        "from protein_performer.runner import Engine\n"
        "def f():\n"
        "    from protein_performer.data.alphabet import ALPHABET\n"
    )
    fn = tree.body[1]
    assert _project_imports(fn) == [(3, "protein_performer.data.alphabet")]
    assert _project_imports(ast.parse("from protein_performer.study import figures")) == [
        (1, "protein_performer.study.figures")
    ]
    assert _path_of("protein_performer.data.alphabet") == "data/alphabet.py"
    assert not _loads_matplotlib("data/alphabet.py")
    assert _loads_matplotlib("analysis/figures.py")  # it imports matplotlib.figure


def test_modules_are_small():
    sources = [p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".cpp")]
    assert len(sources) > 100 and all((PACKAGE / rel).is_file() for rel in LONG)
    long = {
        rel: n
        for p in sources
        if (rel := p.relative_to(PACKAGE).as_posix()) not in LONG
        and (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these into modules with one job each (<= {MAX_LINES} lines): {long}"
