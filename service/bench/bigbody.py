"""``motionlift bench bigbody``: one very large ``POST /lift`` body (by default 64 tracks x 9,000 frames, about
57 MiB of JSON, under the 64 MiB limit) while a probe process (``probe.py``) asks ``/healthz`` and a small ``/lift``
every 50 ms. One frozen event loop is one long probe, so the slowest probe during the large request is the figure.
The server's memory (its own RSS and its body-reader processes') is sampled every 50 ms, to state the memory a
request costs as a factor of its body size.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.bench.load import ServerProcess, request_body
from service.bench.probe import Probe, Probes, summary
from service.bench.procs import descendants, rss_kib
from service.bench.table import render


def big_body(tracks: int, frames: int) -> bytes:
    """A body of ``tracks`` COCO-17 tracks of ``frames`` frames, each joint ``[x, y]`` written as short as it can
    be, so the body holds as many frames as the size limit allows (64 x 9,000: 56 MiB)."""
    joint = b"[1,2]"
    frame = b"[" + b",".join([joint] * 17) + b"]"
    sequence = b"[" + b",".join([frame] * frames) + b"]"
    tracks_json = b",".join(b'{"id":%d,"keypoints":%s}' % (i, sequence) for i in range(tracks))
    return b'{"format":"coco","image_size":[1920,1080],"tracks":[' + tracks_json + b"]}"


@dataclass
class Memory:
    """Peak RSS (KiB) of the server process and of its child processes together, sampled until ``done``."""

    server: int = 0
    children: int = 0
    done: bool = False

    def sample(self, pid: int, every_s: float = 0.05) -> None:
        while not self.done:
            self.server = max(self.server, rss_kib(pid))
            self.children = max(self.children, sum(rss_kib(c) for c in descendants(pid)))
            time.sleep(every_s)


def _post(url: str, body: bytes) -> tuple[int, float, float]:
    """``POST /lift`` with ``body``: status, wall-clock start, seconds to the answer."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    started, t0 = time.time(), time.perf_counter()
    conn.request("POST", "/lift", body, {"content-type": "application/json"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, started, time.perf_counter() - t0


def run(model: Path, *, tracks: int, frames: int, quiet_s: float = 2.0, serve_flags: list[str]) -> str:
    """Serve ``model``, send one body of ``tracks`` x ``frames`` while probing; the report as printed."""
    body = big_body(tracks, frames)
    server = ServerProcess(model, serve_flags)
    try:
        server.wait_ready()
        before = rss_kib(server.proc.pid), sum(rss_kib(c) for c in descendants(server.proc.pid))
        probe = Probe(server.url, request_body(27, flip=True))
        probe.start()
        time.sleep(quiet_s)  # the probes' quiet baseline
        memory = Memory()
        sampler = threading.Thread(target=memory.sample, args=(server.proc.pid,), daemon=True)
        sampler.start()
        status, started, seconds = _post(server.url, body)
        time.sleep(quiet_s)
        memory.done = True
        probes = probe.stop()
    finally:
        server.stop()
    return _report(body, status, started, seconds, probes, before, memory)


def _report(
    body: bytes, status: int, started: float, seconds: float, probes: Probes, before: tuple[int, int], memory: Memory
) -> str:
    mib = len(body) / 2**20
    during = {kind: probes.between(kind, started, started + seconds) for kind in ("healthz", "lift")}
    rows = [
        [kind, summary(during[kind]), summary(probes.ms[kind]), sorted(set(probes.statuses[kind]))]
        for kind in ("healthz", "lift")
    ]
    table = render(["probe (every 50 ms)", "during the large request (ms)", "whole run (ms)", "statuses"], rows)
    worst = max((max(v) for v in during.values() if v), default=float("nan"))
    server_growth = (memory.server - before[0]) / 1024
    children_growth = (memory.children - before[1]) / 1024
    return "\n".join(
        [
            f"large body: {mib:.1f} MiB -> HTTP {status} in {seconds:.2f} s",
            table,
            f"slowest probe while the large request was handled: {worst:.1f} ms",
            f"server RSS {before[0] / 1024:.0f} MiB -> peak {memory.server / 1024:.0f} MiB "
            f"(+{server_growth:.0f} MiB = {server_growth / mib:.2f} x the body)",
            f"body readers + model RSS {before[1] / 1024:.0f} MiB -> peak {memory.children / 1024:.0f} MiB "
            f"(+{children_growth:.0f} MiB = {children_growth / mib:.2f} x the body)",
        ]
    )


def add_command(bench_sub: Any) -> None:
    """Add ``bigbody`` to the ``motionlift bench`` subparsers."""
    from service.config import DEFAULT_MODEL

    bench = bench_sub.add_parser("bigbody", help="one huge /lift body while /healthz and a small /lift are probed")
    bench.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="TorchScript model file")
    bench.add_argument("--tracks", type=int, default=64, help="tracks in the body (default 64: 57 MiB with 9,000)")
    bench.add_argument("--frames", type=int, default=9000, help="frames per track")
    bench.add_argument("--serve-flags", default="", help="extra flags of `motionlift serve`")
    bench.set_defaults(bench_run=_command)


def _command(args: Any) -> int:
    print(run(args.model, tracks=args.tracks, frames=args.frames, serve_flags=args.serve_flags.split()))
    return 0
