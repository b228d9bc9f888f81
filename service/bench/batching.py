"""``motionlift bench batching``: does batching pay once served? The same model served twice, batched (the
defaults) and unbatched (``--max-batch-size 1``), each under ``clients`` concurrent REST clients from ``hey`` (a
compiled load generator in its own process, at nice 10 as in ``bench overload``), with ``/healthz`` probed every
50 ms meanwhile. Issue 14's case is the tiny model on 27-frame requests from 64 clients, where the service's own
per-request work is as large as the model's.

Besides requests/s it reports where the CPU went per answered request: the gateway process (HTTP, JSON, the
core's preparation and merging, admission) in microseconds, and the model processes in milliseconds, read from
``/proc`` before and after the load.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.bench.load import ServerProcess, request_body
from service.bench.overload import hey
from service.bench.probe import Probe
from service.bench.procs import children, cpu_s
from service.bench.table import render


@dataclass(frozen=True)
class Served:
    name: str
    ok_per_s: float
    p50_ms: float
    p99_ms: float
    health_p99_ms: float
    gateway_us: float  # gateway CPU per answered request
    model_ms: float  # model processes' CPU per answered request


def serve_one(name: str, model: Path, flags: list[str], body: bytes, clients: int, seconds: float) -> Served:
    server = ServerProcess(model, flags)
    try:
        server.wait_ready()
        hey(server.url, body, clients, 3.0)  # warm-up: batch shapes, connections
        pid = server.proc.pid
        models = children(pid)
        gateway0, model0 = cpu_s(pid), sum(cpu_s(p) for p in models)
        probe = Probe(server.url, None)
        probe.start()
        try:
            point = hey(server.url, body, clients, seconds)
        finally:
            health = probe.stop().ms["healthz"]
        gateway1, model1 = cpu_s(pid), sum(cpu_s(p) for p in models)
    finally:
        server.stop()
    answered = max(1, len(point.ok_ms))
    return Served(
        name,
        len(point.ok_ms) / seconds,
        float(np.percentile(point.ok_ms, 50)) if point.ok_ms else 0.0,
        float(np.percentile(point.ok_ms, 99)) if point.ok_ms else 0.0,
        float(np.percentile(health, 99)) if health else 0.0,
        1e6 * (gateway1 - gateway0) / answered,
        1e3 * (model1 - model0) / answered,
    )


def run(model: Path, *, frames: int, clients: int, seconds: float, serve_flags: list[str]) -> str:
    body = request_body(frames, flip=True)
    rows = [
        serve_one("batched", model, serve_flags, body, clients, seconds),
        serve_one("unbatched", model, [*serve_flags, "--max-batch-size", "1"], body, clients, seconds),
    ]
    table = render(
        ["serve", "ok/s", "p50 ms", "p99 ms", "/healthz p99 ms", "gateway CPU us/request", "model CPU ms/request"],
        [[r.name, r.ok_per_s, r.p50_ms, r.p99_ms, r.health_p99_ms, r.gateway_us, r.model_ms] for r in rows],
    )
    ratio = rows[0].ok_per_s / rows[1].ok_per_s if rows[1].ok_per_s else float("nan")
    head = f"{model}: {frames}-frame requests with flip, {clients} hey clients, {seconds:g} s each"
    return "\n".join([f"{head}, {time.strftime('%H:%M')}", table, f"batched / unbatched: {ratio:.2f} x"])


def add_command(bench_sub: Any) -> None:
    """Add ``batching`` to the ``motionlift bench`` subparsers."""
    from service.config import DEFAULT_MODEL

    bench = bench_sub.add_parser("batching", help="served requests/s batched vs --max-batch-size 1, hey load")
    bench.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="TorchScript model file")
    bench.add_argument("--frames", type=int, default=27, help="frames per request (flip on)")
    bench.add_argument("--clients", type=int, default=64, help="concurrent hey clients")
    bench.add_argument("--seconds", type=float, default=10.0, help="duration of each point")
    bench.add_argument("--serve-flags", default="", help="flags of `motionlift serve` for both servers")
    bench.set_defaults(bench_run=_command)


def _command(args: Any) -> int:
    print(run(args.model, frames=args.frames, clients=args.clients, seconds=args.seconds,
              serve_flags=args.serve_flags.split()))  # fmt: skip
    return 0
