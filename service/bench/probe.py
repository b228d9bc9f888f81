"""A probe in its own process: ``GET /healthz`` and a small ``POST /lift`` every ``every_s`` seconds each, so that
a frozen event loop shows up as one long probe (used by ``bench bigbody`` and ``bench overload``).

The probe runs in a child process (``spawn``): in the benchmark's own process it would share the GIL with the
benchmark's clients and measure them instead of the server.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event

import numpy as np

from service.bench.load import Connection


@dataclass
class Probes:
    """Each probe's wall-clock start (``time.time()``) and latency (ms), by kind (``healthz``, ``lift``)."""

    starts: dict[str, list[float]] = field(default_factory=lambda: {"healthz": [], "lift": []})
    ms: dict[str, list[float]] = field(default_factory=lambda: {"healthz": [], "lift": []})
    statuses: dict[str, list[int]] = field(default_factory=lambda: {"healthz": [], "lift": []})

    def between(self, kind: str, start: float, end: float) -> list[float]:
        """Latencies of the probes of ``kind`` that were in flight at some time in [start, end] (wall clock)."""
        return [
            ms for t, ms in zip(self.starts[kind], self.ms[kind], strict=True) if t <= end and t + ms / 1000 >= start
        ]


def summary(values: list[float]) -> str:
    """``n, p50, p99, max`` of latencies in ms, as a table cell."""
    if not values:
        return "none"
    p50, p99 = np.percentile(values, [50, 99])
    return f"{len(values)}: p50 {p50:.1f}, p99 {p99:.1f}, max {max(values):.1f}"


async def _loop(host: str, port: int, kind: str, body: bytes | None, every_s: float, stop: Event, out: Probes) -> None:
    conn = Connection(host, port)
    try:
        while not stop.is_set():
            started, t0 = time.time(), time.perf_counter()
            if kind == "healthz":
                status, _, _ = await conn.request("GET", "/healthz")
            else:
                status, _, _ = await conn.request("POST", "/lift", body or b"")
            out.starts[kind].append(started)
            out.ms[kind].append(1000 * (time.perf_counter() - t0))
            out.statuses[kind].append(status)
            await asyncio.sleep(every_s)
    finally:
        conn.close()


def _main(url: str, body: bytes | None, every_s: float, stop: Event, results: multiprocessing.Queue[Probes]) -> None:
    host, port = url.removeprefix("http://").split(":")
    out = Probes()

    async def both() -> None:
        kinds = ("healthz",) if body is None else ("healthz", "lift")
        await asyncio.gather(*(_loop(host, int(port), k, body, every_s, stop, out) for k in kinds))

    asyncio.run(both())
    results.put(out)


class Probe:
    """``start()`` the probe process, ``stop()`` it and get its ``Probes``. ``lift_body`` None: /healthz only."""

    def __init__(self, url: str, lift_body: bytes | None, every_s: float = 0.05) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._results: multiprocessing.Queue[Probes] = context.Queue()
        self._process = context.Process(
            target=_main, args=(url, lift_body, every_s, self._stop, self._results), daemon=True
        )

    def start(self) -> None:
        self._process.start()

    def stop(self) -> Probes:
        self._stop.set()
        probes = self._results.get(timeout=60)
        self._process.join(10)
        return probes
