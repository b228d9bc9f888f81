"""``motionlift bench tracing``: what tracing costs a small ``POST /lift``, side by side. The REST app (middleware,
route, core, batcher) runs in this process over a model that answers its input (so the figure is the service's
own work, the part tracing adds to), driven by an in-process ASGI client, one request at a time:

- ``off``: no ``OTEL_*`` variables (the default): the core's no-op tracer;
- ``on, not sampled``: a tracer whose sampler drops every trace (``OTEL_TRACES_SAMPLER=traceidratio``, 0);
- ``on``: every span recorded and handed to a ``BatchSpanProcessor`` whose exporter drops them (no collector:
  the exporter's network cost is in its own thread, not on the request's path).

The modes take turns, ``rounds`` times, and each reports the median over its rounds of the process's CPU time per
request (the BatchSpanProcessor's thread included), beside the wall time. CPU time is the steadier figure on a
shared machine, where other processes stretch the wall time; the figures are rough either way, and the difference
between the rows is what to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np

from service.bench.load import request_body
from service.bench.table import render
from service.core.backend import Array, ModelInfo
from service.core.trace import OFF, Tracer


class Echo:
    """A ``Backend`` answering its input at once: the cost measured is the service's, not a model's."""

    ready = True
    concurrency = 1
    ahead = 0
    info = ModelInfo("echo", "echo", 0, 27, False, "none", "fp32", "cpu")

    async def start(self) -> None:
        pass

    async def infer(self, batch: Array, *, first: int = 0, headers: Mapping[str, str] | None = None) -> Array:
        out: Array = np.array(batch[:, first:], np.float32)
        return out

    async def close(self) -> None:
        pass


def tracers() -> dict[str, Tracer]:
    """The three modes' tracers (see the module)."""
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from service.telemetry.otel import OtelTracer

    class Discard(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    sampled = TracerProvider(shutdown_on_exit=False)
    sampled.add_span_processor(BatchSpanProcessor(Discard()))
    dropped = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)), shutdown_on_exit=False)
    return {"off": OFF, "on, not sampled": OtelTracer(dropped), "on": OtelTracer(sampled)}


@asynccontextmanager
async def _client(tracer: Tracer) -> AsyncIterator[Any]:
    """An in-process client of a fresh app over ``tracer`` (lifespan started), warmed up."""
    import httpx

    from service.api.rest.app import create_app
    from service.config import Settings
    from service.core.lifter import Lifter

    app = create_app(Lifter(Echo(), Settings(max_queue_delay_ms=0, docs=False), tracer=tracer))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://b") as client:
        yield client


async def _measure(body: bytes, requests: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """(CPU, wall) microseconds per request of each mode's rounds; the modes take turns in every round."""
    modes = tracers()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
    headers = {"content-type": "application/json"}
    async with contextlib.AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(_client(tracer)) for name, tracer in modes.items()}
        for client in clients.values():
            for _ in range(20):  # warm-up
                (await client.post("/lift", content=body, headers=headers)).raise_for_status()
        for _ in range(rounds):
            for name, client in clients.items():
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(requests):
                    (await client.post("/lift", content=body, headers=headers)).raise_for_status()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                times[name].append((1e6 * cpu / requests, 1e6 * wall / requests))
    for tracer in modes.values():
        tracer.close()
    return times


def run(*, frames: int, requests: int, rounds: int) -> str:
    times = asyncio.run(_measure(request_body(frames, flip=False), requests, rounds))
    base = statistics.median(cpu for cpu, _ in times["off"])
    rows: list[list[Any]] = []
    for name, values in times.items():
        cpu, wall = statistics.median(c for c, _ in values), statistics.median(w for _, w in values)
        rows.append([name, f"{cpu:,.0f}", f"{cpu - base:+,.0f}", f"{100 * (cpu / base - 1):+.1f} %", f"{wall:,.0f}"])
    table = render(["tracing", "CPU us/request", "vs off (us)", "vs off", "wall us/request"], rows)
    head = f"POST /lift, {frames} frames (one window), echo model, {requests} requests x {rounds} rounds per mode"
    return "\n".join([f"{head}, {time.strftime('%H:%M')}", table])


def add_command(bench_sub: Any) -> None:
    """Add ``tracing`` to the ``motionlift bench`` subparsers."""
    bench = bench_sub.add_parser("tracing", help="what tracing (off, on but not sampled, on) costs a small /lift")
    bench.add_argument("--frames", type=int, default=27, help="frames per request")
    bench.add_argument("--requests", type=int, default=200, help="requests per mode and round")
    bench.add_argument("--rounds", type=int, default=15, help="rounds; the modes take turns in each")
    bench.set_defaults(bench_run=_command)


def _command(args: Any) -> int:
    print(run(frames=args.frames, requests=args.requests, rounds=args.rounds))
    return 0
