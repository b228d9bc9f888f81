"""A plain-text progress bar on stderr: redrawn in place on a terminal, one line every few percent in a log."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``start(step)``, ``update(step, **numbers)`` after each step, ``finish()``.

    On a terminal the bar is redrawn at most 5 times a second; otherwise (a log file) a line is written each
    time another ``1/lines`` of the run is done, so ``nohup`` logs stay short. The rate and ETA count only
    steps run since ``start`` (a resumed run does not claim the earlier steps' speed).
    """

    def __init__(self, total: int, stream: TextIO | None = None, lines: int = 50, width: int = 30) -> None:
        self.total = max(1, total)
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.lines = lines
        self._bucket = -1
        self.width = width
        self._t0 = time.perf_counter()
        self._first = 0
        self._last_draw = 0.0

    def start(self, step: int) -> None:
        self._t0 = time.perf_counter()
        self._first = step

    def update(self, step: int, fraction: float | None = None, **numbers: float) -> None:
        """Report ``step`` done; ``fraction`` (0..1) overrides ``step / total`` for the bar and the ETA (a
        run with a wall-time budget); ``numbers`` are shown as ``name value``."""
        now = time.perf_counter()
        frac = step / self.total if fraction is None else fraction
        if self.tty:
            if now - self._last_draw < 0.2 and frac < 1.0:
                return
        elif int(frac * self.lines) == self._bucket and frac < 1.0:
            return
        self._bucket = int(frac * self.lines)
        self._last_draw = now
        rate = (step - self._first) / max(now - self._t0, 1e-9)
        start_frac = self._first / self.total if fraction is None else 0.0
        spent = now - self._t0
        eta = spent * (1.0 - frac) / (frac - start_frac) if frac > start_frac else float("inf")
        done = int(self.width * min(1.0, frac))
        extra = "  ".join(f"{k} {v:.1f}" for k, v in numbers.items())
        eta_text = f"{int(eta // 60)}:{int(eta % 60):02d}" if eta != float("inf") else "?"
        text = (
            f"[{'#' * done}{'.' * (self.width - done)}] {step}/{self.total} "
            f"{100 * frac:3.0f}%  {rate:.2f} step/s  eta {eta_text}  {extra}"
        )
        self.stream.write(("\r" + text) if self.tty else text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
