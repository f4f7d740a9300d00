"""Progress of long work: a tqdm bar on a terminal, plain periodic lines otherwise (CI logs).

One class for every job that loops over proteins or bytes (evaluation, analysis, embedding,
prepare, download). Training has its own Lightning callback (training/callbacks.py).
"""

from __future__ import annotations

import sys
import time
from typing import IO


class Progress:
    """``update(n)`` / ``update_to(n)`` as work is done, ``close()`` at the end.

    ``unit="B"`` counts bytes (shown in MiB); any other unit is a plain count ("protein").
    Without a terminal a line goes to ``stream`` (default stderr) every ``interval`` seconds,
    and one summary line at ``close``. ``enabled=False`` silences it.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        *,
        unit: str = "B",
        enabled: bool = True,
        stream: IO[str] | None = None,
        interval: float = 10.0,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.enabled, self.interval = enabled, interval
        self.stream = stream if stream is not None else sys.stderr
        self.n: float = 0
        self.t0 = self._last = time.perf_counter()
        self._bar = None
        if enabled and hasattr(self.stream, "isatty") and self.stream.isatty():
            from tqdm import tqdm

            scaled = unit == "B"
            self._bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                unit_scale=scaled,
                unit_divisor=1024 if scaled else 1000,
                file=self.stream,
                dynamic_ncols=True,
            )

    def update(self, n: float, postfix: str = "") -> None:
        self.update_to(self.n + n, postfix)

    def update_to(self, n: float, postfix: str = "") -> None:
        delta, self.n = n - self.n, n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(delta)
            if postfix:
                self._bar.set_postfix_str(postfix, refresh=False)
            return
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            self._write(self._line(postfix))

    def _amount(self, n: float) -> str:
        if self.unit == "B":
            return f"{n / 2**20:,.1f} MiB"
        return f"{round(n):,} {self.unit}s"

    def _line(self, postfix: str = "") -> str:
        done = self._amount(self.n)
        if self.total:
            done = f"{100 * self.n / self.total:5.1f}% ({done} of {self._amount(self.total)})"
        text = f"{self.desc}: {done}, {time.perf_counter() - self.t0:,.1f} s"
        return text + (f", {postfix}" if postfix else "")

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.unit != "B":
            self._write(
                f"{self.desc}: {self._amount(self.n)} in {time.perf_counter() - self.t0:,.1f} s"
            )
