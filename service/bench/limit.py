"""The compute limit of streaming on this machine, and a CPU hog to measure the service beside one.

**Compute limit**: every causal 30 fps stream needs one window per frame (two with flip). The model file is run
here, in a child process with ``threads`` intra-op threads, on batches of 1 to 32 windows of the stream's
length; the best windows/s divided by the windows a stream needs per second is the most streams this machine
could serve if nothing but the model ran. ``bench stream`` prints it beside the streams it sustained, measured in
the same run, so the ratio holds even as this VM's speed drifts.

**Hog**: a process spinning on one core at normal priority, as another program on a shared host would; it runs
for the whole sweep when ``bench stream --hog`` asks for it.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

BATCHES = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class Limit:
    """The raw model's best rate for windows of ``window`` frames, and what it means for ``fps`` streams."""

    window: int
    threads: int
    best_batch: int
    windows_per_s: float
    per_stream: float  # windows one stream needs per second

    @property
    def streams(self) -> float:
        return self.windows_per_s / self.per_stream


def compute_limit(model: Path, *, window: int, fps: float, flip: bool, threads: int, seconds: float = 1.5) -> Limit:
    """Time the model in a child process (its own threads, no server beside it) on batches of ``BATCHES``."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        rates: dict[int, float] = pool.apply(_rates, (str(model), window, threads, seconds))
    best = max(rates, key=lambda b: rates[b])
    return Limit(window, threads, best, rates[best], fps * (2 if flip else 1))


def _rates(model: str, window: int, threads: int, seconds: float) -> dict[int, float]:
    from service.backends.torchscript.threads import wait_passively

    wait_passively()
    import torch

    from service.model.export import load_torchscript

    torch.set_num_threads(threads)
    module, _ = load_torchscript(model)
    rates = {}
    with torch.inference_mode():
        for batch in BATCHES:
            x = torch.zeros(batch, window, 17, 3)
            for _ in range(3):
                module(x)  # the profiling executor specialises on the first calls of a shape
            calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                module(x)
                calls += 1
            rates[batch] = calls * batch / (time.perf_counter() - t0)
    return rates


class Hog:
    """A busy loop in its own process at normal priority, from ``start`` to ``stop``."""

    def __init__(self) -> None:
        self._process: multiprocessing.process.BaseProcess | None = None

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(target=_spin, name="cpu-hog", daemon=True)
        self._process.start()

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(10)
            self._process = None


def _spin() -> None:
    while True:
        pass
