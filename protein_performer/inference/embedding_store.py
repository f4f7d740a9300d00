"""Restartable embedding output: one ``.npz`` per protein plus ``index.csv``.

Per-protein ``.npz`` (numpy only, no new dependency) so a shard is complete or absent:
each file is written to ``*.tmp`` and renamed (atomic on POSIX), and its index line is
appended and flushed only after the rename. A rerun on the same directory skips indexed
proteins and refuses if ``settings.json`` (checkpoint, layers, window plan) differs.
Each ``.npz`` holds ``layer<k>`` [n, D] per-residue and ``mean_layer<k>`` [D] arrays.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from protein_performer.errors import InputError

INDEX_FIELDS = ["index", "accession", "length", "file", "mode"]


class EmbeddingStore:
    def __init__(self, out_dir: str | Path, settings: dict) -> None:
        self.dir = Path(out_dir)
        (self.dir / "proteins").mkdir(parents=True, exist_ok=True)
        meta = self.dir / "settings.json"
        if meta.exists():
            old = json.loads(meta.read_text())
            if old != settings:
                raise InputError(
                    f"{self.dir} holds embeddings made with other settings ({old}); give a new "
                    f"out= directory or rerun with those settings (now: {settings})"
                )
        else:
            meta.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
        self.index_path = self.dir / "index.csv"
        self.done: set[int] = set()
        if self.index_path.exists():
            with open(self.index_path, newline="") as f:
                self.done = {int(r["index"]) for r in csv.DictReader(f)}
        new = not self.index_path.exists()
        self._index = open(self.index_path, "a", newline="")
        self._writer = csv.DictWriter(self._index, fieldnames=INDEX_FIELDS)
        if new:
            self._writer.writeheader()
            self._index.flush()

    def write(
        self,
        index: int,
        accession: str,
        layers: list[int],
        per_residue: list[np.ndarray],
        mean: list[np.ndarray],
        mode: str,
    ) -> None:
        """Store protein ``index`` (its position in the input) once; index it last."""
        if index in self.done:
            return
        name = f"proteins/{index:08d}.npz"
        arrays = {f"layer{k}": p for k, p in zip(layers, per_residue)}
        arrays.update({f"mean_layer{k}": m for k, m in zip(layers, mean)})
        tmp = self.dir / (name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, self.dir / name)
        self._writer.writerow(
            {
                "index": index,
                "accession": accession,
                "length": len(per_residue[0]),
                "file": name,
                "mode": mode,
            }
        )
        self._index.flush()
        self.done.add(index)

    def close(self) -> None:
        self._index.close()
