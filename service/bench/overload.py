"""``motionlift bench overload``: goodput at the saturating load and at ``factor`` times it, against a small queue
(``--max-queued-windows 16`` by default), over REST and gRPC, in one run on one server.

REST load comes from ``hey`` (Debian's package: a compiled client, so the load generator does not share the
server's interpreter or fight the benchmark's GIL), one CSV row per request. gRPC load comes from ``h2load``
(``service/bench/h2load.py``: compiled too; outcomes from the service's counts, durations from its log) when it is
installed, else from asyncio clients in a child process sending prepared bytes. Either way a refused call
(RESOURCE_EXHAUSTED) is retried at once, as hey does, so the offered load stays at ``clients`` calls in flight.
A probe process asks ``/healthz`` (and a small ``/lift``) every 50 ms meanwhile.
Goodput is the frames/s of the requests answered 200 / OK.

Both load generators run at nice ``GENERATOR_NICE``: on one 2-core machine they stand in for clients on other
machines, and at 10x overload a generator retrying every refusal at once otherwise takes about a core (a Python
gRPC client spends ~0.5 ms of CPU per call) from the server it measures. The probe runs at normal priority: it
measures what a health checker would see.
"""

from __future__ import annotations

import asyncio
import csv
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from service.bench import h2load
from service.bench.grpc_load import lift_request
from service.bench.load import ServerProcess, request_body
from service.bench.probe import Probe
from service.bench.table import render

GENERATOR_NICE = 10
LIFT_METHOD = "/motionlift.v1.Lifter/Lift"  # as in lift_pb2_grpc (proto/motionlift/v1/lift.proto)


@dataclass
class Point:
    """One protocol at one number of clients: per-call latencies (ms) by outcome, and the probes' /healthz."""

    protocol: str
    clients: int
    seconds: float
    ok_ms: list[float] = field(default_factory=list)
    refused_ms: list[float] = field(default_factory=list)
    other: int = 0
    health_ms: list[float] = field(default_factory=list)
    generator: str = "hey"

    def goodput(self, frames: int) -> float:
        return len(self.ok_ms) * frames / self.seconds

    def pooled(self, other: Point) -> Point:
        """This point and ``other`` (same protocol and clients) as one: their calls and seconds added."""
        return Point(
            self.protocol,
            self.clients,
            self.seconds + other.seconds,
            self.ok_ms + other.ok_ms,
            self.refused_ms + other.refused_ms,
            self.other + other.other,
            self.health_ms + other.health_ms,
            self.generator,
        )


def hey(url: str, body: bytes, clients: int, seconds: float) -> Point:
    """``hey`` for ``seconds`` at ``clients`` concurrent requests; its per-request CSV sorted by outcome."""
    if shutil.which("hey") is None:
        raise RuntimeError("bench overload needs hey (Debian: apt-get install hey)")
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(body)
        f.flush()
        cmd = ["nice", "-n", str(GENERATOR_NICE), "hey", "-z", f"{seconds:g}s", "-c", str(clients), "-m", "POST"]
        cmd += ["-T", "application/json", "-D", f.name]
        out = subprocess.run([*cmd, "-o", "csv", f"{url}/lift"], capture_output=True, text=True, check=True)
    point = Point("rest", clients, seconds)
    for row in csv.DictReader(out.stdout.splitlines()):
        ms, status = 1000 * float(row["response-time"]), int(row["status-code"])
        if status == 200:
            point.ok_ms.append(ms)
        elif status == 503:
            point.refused_ms.append(ms)
        else:
            point.other += 1
    return point


Outcomes = tuple[list[float], list[float], int]  # ok latencies, refused latencies, other errors


async def _grpc_clients(target: str, body: bytes, clients: int, seconds: float) -> Outcomes:
    """``clients`` callers, each on its own channel (its own connection, as separate clients are: on one shared
    HTTP/2 connection the calls queue behind each other's 30 KB bodies, and that wait was counted as the
    service's).

    The request is serialised once and answers are not decoded (a generic call on raw bytes), as hey sends one
    prepared body and parses no answer: encoding a 30 KB request per call and decoding its answer is CPU the
    generator would take from the server it measures on the same cores (how much was not measured)."""
    request = lift_request(body).SerializeToString()
    ok: list[float] = []
    refused: list[float] = []
    other = 0
    stop = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal other
        async with grpc.aio.insecure_channel(target) as channel:
            lift = channel.unary_unary(LIFT_METHOD)  # no (de)serialisers: bytes in, bytes out
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    await lift(request, timeout=60)
                    ok.append(1000 * (time.perf_counter() - t0))
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        refused.append(1000 * (time.perf_counter() - t0))
                    else:
                        other += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return ok, refused, other


def _grpc_main(target: str, body: bytes, clients: int, seconds: float, out: multiprocessing.Queue[Outcomes]) -> None:
    os.nice(GENERATOR_NICE)
    out.put(asyncio.run(_grpc_clients(target, body, clients, seconds)))


def _grpc(target: str, body: bytes, clients: int, seconds: float) -> Point:
    """gRPC ``Lift`` calls from ``clients`` asyncio clients in a child process for ``seconds``."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[Outcomes] = context.Queue()
    child = context.Process(target=_grpc_main, args=(target, body, clients, seconds, results))
    child.start()
    ok, refused, other = results.get(timeout=seconds + 120)
    child.join(30)
    return Point("grpc", clients, seconds, ok, refused, other)


def _h2load(server: ServerProcess, body: bytes, clients: int, seconds: float) -> Point:
    """gRPC ``Lift`` calls from h2load; how many succeeded, were refused or failed, from the service's metrics."""
    before = h2load.requests_total(server.url, "grpc")
    message = lift_request(body).SerializeToString()
    durations = h2load.run(server.grpc_target, LIFT_METHOD, message, clients, seconds, GENERATOR_NICE)
    after = h2load.requests_total(server.url, "grpc")
    delta = {outcome: after[outcome] - before.get(outcome, 0.0) for outcome in after}
    ok_ms, refused_ms = h2load.split(durations, int(delta.get("ok", 0)))
    other = int(sum(n for outcome, n in delta.items() if outcome not in ("ok", "overloaded", "cancelled")))
    return Point("grpc", clients, seconds, ok_ms, refused_ms, other, generator="h2load")


def _measure(server: ServerProcess, protocol: str, body: bytes, clients: int, seconds: float, grpc_load: str) -> Point:
    probe = Probe(server.url, request_body(27, flip=True))
    probe.start()
    try:
        if protocol == "rest":
            point = hey(server.url, body, clients, seconds)
        elif grpc_load == "h2load" or (grpc_load == "auto" and h2load.available()):
            point = _h2load(server, body, clients, seconds)
        else:
            point = _grpc(server.grpc_target, body, clients, seconds)
            point.generator = "python"
    finally:
        health = probe.stop().ms["healthz"]
    point.health_ms = health
    return point


def run(
    model: Path,
    *,
    frames: int,
    saturating: int,
    factor: int,
    seconds: float,
    serve_flags: list[str],
    grpc_load: str = "auto",
    rounds: int = 2,
) -> str:
    """Serve ``model`` with ``serve_flags``; each protocol at ``saturating`` and ``factor`` x as many clients.
    ``grpc_load``: ``h2load``, ``python`` (asyncio clients) or ``auto`` (h2load when installed).

    ``rounds`` > 1 alternates the two loads (saturated, over, over, saturated, …) and pools each load's points:
    the VM's speed drifts by up to 25% within minutes, and with one point each the ratio measured that drift as
    much as the service (0.80-1.04 x in runs of one setting); an ABBA order cancels a steady drift."""
    body = request_body(frames, flip=True)
    server = ServerProcess(model, serve_flags)
    points: list[Point] = []
    try:
        server.wait_ready()
        keep_off_the_model(server)
        for protocol in ("rest", "grpc"):
            pooled: dict[int, Point] = {}
            for clients in alternating(saturating, saturating * factor, rounds):
                point = _measure(server, protocol, body, clients, seconds, grpc_load)
                pooled[clients] = pooled[clients].pooled(point) if clients in pooled else point
            points += [pooled[saturating], pooled[saturating * factor]]
    finally:
        server.stop()
    return _report(points, frames, serve_flags, rounds)


def keep_off_the_model(server: ServerProcess) -> None:
    """This process, and so the generators and the probe it starts from now on, on the CPUs the server's gateway
    keeps to (``--pin-cpus``): they stand in for clients on other machines, which take no CPU from the model. Left
    on every CPU, the probe alone (9% of a CPU) and h2load preempted the model when the gateway's CPU was busy.
    Where the server does not pin, the gateway has every CPU and so does this process."""
    os.sched_setaffinity(0, os.sched_getaffinity(server.proc.pid))


def alternating(first: int, second: int, rounds: int) -> list[int]:
    """``first, second`` then ``second, first`` and so on, ``rounds`` times (ABBA: a linear drift cancels)."""
    return [n for r in range(rounds) for n in ((first, second) if r % 2 == 0 else (second, first))]


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.1f}" if values else "-"


def _report(points: list[Point], frames: int, serve_flags: list[str], rounds: int) -> str:
    headers = ["protocol", "load", "clients", "ok/s", "goodput frames/s", "ok p50 ms", "ok p99 ms", "refused/s",
               "refused p99 ms", "other", "/healthz p99 ms", "/healthz max ms"]  # fmt: skip
    rows = [
        [p.protocol, p.generator, p.clients, f"{len(p.ok_ms) / p.seconds:.1f}", f"{p.goodput(frames):,.0f}",
         _pct(p.ok_ms, 50), _pct(p.ok_ms, 99), f"{len(p.refused_ms) / p.seconds:.1f}", _pct(p.refused_ms, 99), p.other,
         _pct(p.health_ms, 99), f"{max(p.health_ms):.1f}" if p.health_ms else "-"]
        for p in points
    ]  # fmt: skip
    lines = [
        f"{frames}-frame requests with flip; serve {' '.join(serve_flags)}; {rounds} round(s) per load, alternated",
        render(headers, rows),
    ]
    for saturated, over in zip(points[::2], points[1::2], strict=True):
        ratio = over.goodput(frames) / saturated.goodput(frames) if saturated.ok_ms else float("nan")
        lines.append(
            f"{saturated.protocol}: goodput at {over.clients} clients = {ratio:.2f} x at {saturated.clients}; "
            f"refusals p99 {_pct(over.refused_ms, 99)} ms"
        )
    for p in points:
        cut = h2load.gap(p.ok_ms, p.refused_ms) if p.generator == "h2load" else None
        if cut is not None:
            lines.append(
                f"h2load at {p.clients} clients: outcomes from the service's counts; at the cut the slowest refusal "
                f"took {cut[0]:.1f} ms, the fastest success {cut[1]:.1f} ms"
            )
    return "\n".join(lines)


def add_command(bench_sub: Any) -> None:
    """Add ``overload`` to the ``motionlift bench`` subparsers."""
    from service.config import DEFAULT_MODEL

    bench = bench_sub.add_parser(
        "overload", help="goodput at the saturating load and 10x it against a small queue, REST (hey) and gRPC"
    )
    bench.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="TorchScript model file")
    bench.add_argument("--frames", type=int, default=81, help="frames per request (flip on)")
    bench.add_argument("--clients", type=int, default=4, help="the saturating number of concurrent clients")
    bench.add_argument("--factor", type=int, default=10, help="the overload: factor x --clients")
    bench.add_argument("--seconds", type=float, default=10.0, help="duration of each point")
    bench.add_argument(
        "--rounds", type=int, default=2, help="points per load, alternated (A B B A) and pooled against drift"
    )
    bench.add_argument(
        "--serve-flags", default="--max-queued-windows 16", help="flags of `motionlift serve` (default: a small queue)"
    )
    bench.add_argument(
        "--grpc-load",
        choices=("auto", "h2load", "python"),
        default="auto",
        help="gRPC load: h2load (compiled, from nghttp2-client), python (asyncio clients), auto: h2load if installed",
    )
    bench.set_defaults(bench_run=_command)


def _command(args: Any) -> int:
    if args.rounds < 1:
        print(f"motionlift bench overload: --rounds must be at least 1, got {args.rounds}", file=sys.stderr)
        return 2
    report = run(
        args.model,
        frames=args.frames,
        saturating=args.clients,
        factor=args.factor,
        seconds=args.seconds,
        serve_flags=args.serve_flags.split(),
        grpc_load=args.grpc_load,
        rounds=args.rounds,
    )
    print(report)
    return 0
