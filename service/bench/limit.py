"""The compute limit of streaming on this machine, and a CPU hog to measure the service beside one.

**Compute limit**: every causal 30 fps stream needs one window per frame (two with flip), of which only the last
row is answered, so the model computes that row (``DSTformer.forward_from``) as the service does. The model file is
run here on batches of 1 to 32 windows of the stream's length in two layouts of the machine's CPUs: one child process
with an intra-op thread per CPU, and one single-threaded child per CPU running side by side (as Triton's instance
groups do). The best windows/s of either, divided by the windows a stream needs per second, is the most streams
this machine could serve if nothing but the model ran. Both layouts count: a small model scales poorly across
threads (the default model, 27-frame windows, 2-core AVX2 VM: 119 windows/s with 2 threads in one process, while
two one-thread processes served 2 flipped streams, 120 windows/s, with the gateway beside them), so one layout
alone would understate the limit. ``bench stream`` prints it beside the streams it sustained, measured in the same
run, so the ratio holds even as this VM's speed drifts.

**Hog**: a process spinning on one core at normal priority, as another program on a shared host would; it runs
for the whole sweep when ``bench stream --hog`` asks for it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

BATCHES = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class Limit:
    """The raw model's best rate for windows of ``window`` frames, and what it means for ``fps`` streams.

    ``processes`` children with ``threads`` intra-op threads each reached it, together, at batch ``best_batch``;
    ``layouts`` holds every layout tried as ``(processes, threads, windows/s at its best batch)``."""

    window: int
    processes: int
    threads: int
    best_batch: int
    windows_per_s: float
    per_stream: float  # windows one stream needs per second
    layouts: tuple[tuple[int, int, float], ...] = ()

    @property
    def streams(self) -> float:
        return self.windows_per_s / self.per_stream


def layouts(cpus: int) -> list[tuple[int, int]]:
    """``(processes, threads)`` layouts of ``cpus`` CPUs: one process with every CPU, then one process per CPU."""
    return [(1, cpus)] + ([(cpus, 1)] if cpus > 1 else [])


def compute_limit(
    model: Path, *, window: int, fps: float, flip: bool, cpus: int, rows: int = 1, seconds: float = 1.5
) -> Limit:
    """Time the model in child processes (no server beside them) on batches of ``BATCHES``, in each of
    ``layouts(cpus)``; the best rate of all. Each window computes its last ``rows`` rows only, as a stream's do
    (``DSTformer.forward_from``; a causal stream 1; a file without it runs whole windows). Raises
    ``RuntimeError`` when a child fails or stops answering."""
    tried = []
    for processes, threads in layouts(cpus):
        rates = _together(model, window, window - min(rows, window), processes, threads, seconds)
        batch = max(rates, key=lambda b: rates[b])
        tried.append((processes, threads, batch, rates[batch]))
    processes, threads, batch, rate = max(tried, key=lambda t: t[3])
    return Limit(
        window, processes, threads, batch, rate, fps * (2 if flip else 1), tuple((p, t, r) for p, t, _, r in tried)
    )


def _together(model: Path, window: int, first: int, processes: int, threads: int, seconds: float) -> dict[int, float]:
    """Windows/s per batch size of ``processes`` children timed side by side (a barrier starts each batch size in
    all of them at once), summed."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    children = [
        context.Process(
            target=_child, args=(str(model), window, first, threads, seconds, barrier, results), daemon=True
        )
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        answers = [results.get(timeout=120 + 2 * seconds * len(BATCHES)) for _ in children]
    finally:
        for child in children:
            child.join(10)
            if child.is_alive():
                child.kill()
    failed = [a for a in answers if isinstance(a, str)]
    if failed:
        raise RuntimeError(f"compute limit: a model process failed: {failed[0]}")
    return {b: sum(a[b] for a in answers if not isinstance(a, str)) for b in BATCHES}


def _child(model: str, window: int, first: int, threads: int, seconds: float, barrier: Any, results: Any) -> None:
    try:
        results.put(_rates(model, window, first, threads, seconds, barrier))
    except Exception as error:  # reported to the parent, which raises it
        barrier.abort()
        results.put(f"{type(error).__name__}: {error}")


def _rates(model: str, window: int, first: int, threads: int, seconds: float, barrier: Any) -> dict[int, float]:
    from service.backends.torchscript.threads import wait_passively

    wait_passively()
    import torch

    from service.model.export import load_torchscript

    torch.set_num_threads(threads)
    module, _ = load_torchscript(model)
    rows = getattr(module, "forward_from", None)
    run: Callable[[Any], Any] = module if rows is None or first == 0 else partial(rows, first=first)
    rates = {}
    with torch.inference_mode():
        for batch in BATCHES:
            x = torch.zeros(batch, window, 17, 3)
            for _ in range(3):
                run(x)  # the profiling executor specialises on the first calls of a shape
            barrier.wait()
            calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                run(x)
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
