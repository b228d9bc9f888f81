"""Triton benchmark, one run: the gateway over Triton vs the in-process backend vs a client calling Triton directly.

All three get the same work: ``concurrency`` clients each send one sequence of ``frames`` frames (one window, two
with flip) back to back. The gateway setups are ``motionlift serve`` processes driven over REST (the load
generator of ``bench load``); the direct client sends the very windows a request becomes, ``[W, frames, 17, 3]``,
to Triton over gRPC (tritonclient aio), so Triton's dynamic batcher forms its batches as it does for the gateway's.
Triton's statistics, read before and after each Triton run, split its share: queue wait per request and compute
per execution, and the mean batch it ran. Without ``--triton-url`` a CPU tritonserver (the nvidia-pytriton wheel)
is started on the python-backend twin of the model's repository folder, so on one machine all three share the CPU.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import numpy as np

from service.backends.triton.status import ServerStats
from service.bench.load import LoadRow, ServerProcess, drive, request_body
from service.bench.table import render


async def _stats(url: str, model: str) -> ServerStats:
    import tritonclient.grpc.aio as triton_aio

    client = triton_aio.InferenceServerClient(url)
    try:
        return ServerStats.from_response(await client.get_inference_statistics(model))
    finally:
        await client.close()


async def direct(url: str, model: str, windows: int, frames: int, concurrency: int, seconds: float) -> LoadRow:
    """``concurrency`` tritonclient callers send ``[windows, frames, 17, 3]`` back to back for ``seconds``."""
    import tritonclient.grpc.aio as triton_aio

    from service.model.repository import INPUT, OUTPUT

    row = LoadRow("direct Triton client", concurrency)
    x = np.random.default_rng(0).uniform(-1, 1, (windows, frames, 17, 3)).astype(np.float32)
    client = triton_aio.InferenceServerClient(url)
    stop = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < stop:
            inp = triton_aio.InferInput(INPUT, list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            t0 = time.perf_counter()
            try:
                await client.infer(model, [inp], outputs=[triton_aio.InferRequestedOutput(OUTPUT)])
            except Exception:  # counted, not raised: a benchmark reports failures
                row.errors += 1
                continue
            row.latencies_ms.append(1000 * (time.perf_counter() - t0))
            row.requests += 1
            row.frames += frames

    start = time.perf_counter()
    try:
        await asyncio.gather(*(caller() for _ in range(concurrency)))
    finally:
        await client.close()
    row.seconds = time.perf_counter() - start
    return row


def _split(delta: ServerStats) -> str:
    if not delta.requests or not delta.executions:
        return "no Triton statistics"
    per_exec = 1000 / delta.executions
    return (
        f"Triton: {delta.requests} requests in {delta.executions} executions (mean batch "
        f"{delta.requests / delta.executions:.1f} requests); queue {1000 * delta.queue_s / delta.requests:.2f} "
        f"ms/request; compute {per_exec * delta.compute_s:.2f} ms/execution (input "
        f"{per_exec * delta.compute_input_s:.2f}, infer {per_exec * delta.compute_infer_s:.2f}, "
        f"output {per_exec * delta.compute_output_s:.2f})"
    )


def _rest(url: str, body: bytes, frames: int, concurrency: int, seconds: float, setup: str) -> LoadRow:
    return asyncio.run(drive(url, body, frames, concurrency, seconds, setup, frames))


def _direct(url: str, model: str, windows: int, frames: int, concurrency: int, seconds: float) -> LoadRow:
    return asyncio.run(direct(url, model, windows, frames, concurrency, seconds))


def _read_stats(url: str, model: str) -> ServerStats:
    return asyncio.run(_stats(url, model))


def _warm(step: Callable[[], LoadRow], concurrency: int, *, limit_s: float = 30.0) -> None:
    """Run ``step`` until ``2 x concurrency`` requests were answered in one step (or ``limit_s``): TorchScript's
    profiling executor specialises on the first calls of every batch shape, which take seconds, on both sides."""
    deadline = time.monotonic() + limit_s
    while step().requests < 2 * concurrency and time.monotonic() < deadline:
        pass


def _local_triton(stack: ExitStack, model_dir: Path, threads: int) -> str:
    from service.backends.triton.repo import write_cpu_repository
    from service.bench.tritonserver import LocalTriton

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="motionlift-bench-")))
    write_cpu_repository(model_dir, tmp / "repo")
    server = stack.enter_context(LocalTriton(tmp / "repo", threads=threads))
    return server.grpc_url


def _with_split(stats: Callable[[], ServerStats], point: Callable[[], LoadRow]) -> tuple[LoadRow, str]:
    """Run ``point`` between two reads of Triton's statistics; its row and Triton's share of it (``_split``)."""
    before = stats()
    row = point()
    return row, _split(stats() - before)


def _gateway_rows(
    model_file: Path,
    flags: Sequence[str],
    setup: str,
    stats: Callable[[], ServerStats] | None,
    body: bytes,
    frames: int,
    concurrency: Sequence[int],
    seconds: float,
) -> tuple[list[LoadRow], list[str]]:
    """One gateway setup: a ``motionlift serve`` process with ``flags`` driven over REST at each concurrency;
    the rows and, with ``stats`` (a Triton-backed setup), a note of Triton's share of each."""
    rows: list[LoadRow] = []
    notes: list[str] = []
    server = ServerProcess(model_file, flags)
    try:
        server.wait_ready()
        for c in concurrency:
            _warm(partial(_rest, server.url, body, frames, c, 1.0, setup), c)
            point = partial(_rest, server.url, body, frames, c, seconds, setup)
            if stats is None:
                rows.append(point())
                continue
            row, split = _with_split(stats, point)
            rows.append(row)
            notes.append(f"{setup}, {c} clients: {split}")
    finally:
        server.stop()
    return rows, notes


def run(
    model_dir: Path,
    *,
    triton_url: str | None,
    frames: int,
    concurrency: Sequence[int],
    seconds: float,
    flip: bool,
    serve_flags: Sequence[str] = (),
) -> str:
    """The whole benchmark; returns the printed report. ``model_dir`` is ``<repo>/<model>`` (config.pbtxt and
    ``1/model.pt``): the in-process setup serves its newest ``model.pt``, a local Triton its CPU twin."""
    model = model_dir.name
    model_file = max(model_dir.glob("[0-9]*/model.pt"), key=lambda p: int(p.parent.name))
    body = request_body(frames, flip=flip)
    windows = 2 if flip else 1
    rows: list[LoadRow] = []
    notes: list[str] = []
    with ExitStack() as stack:
        url = triton_url or _local_triton(stack, model_dir, threads=os.cpu_count() or 1)
        stats = partial(_read_stats, url, model)
        setups = {
            "gateway -> Triton": ["--backend", "triton", "--triton-urls", url, "--triton-model", model],
            "in-process": ["--backend", "torchscript"],
        }
        for name, flags in setups.items():
            setup_rows, setup_notes = _gateway_rows(
                model_file, [*flags, *serve_flags], name, stats if "Triton" in name else None, body, frames,
                concurrency, seconds,
            )  # fmt: skip
            rows += setup_rows
            notes += setup_notes
        for c in concurrency:
            _warm(partial(_direct, url, model, windows, frames, c, 1.0), c)
            row, split = _with_split(stats, partial(_direct, url, model, windows, frames, c, seconds))
            rows.append(row)
            notes.append(f"direct, {c} clients: {split}")
    return _report(model_dir, triton_url, frames, flip, seconds, max(concurrency), rows, notes)


def _report(
    model_dir: Path,
    triton_url: str | None,
    frames: int,
    flip: bool,
    seconds: float,
    top: int,
    rows: list[LoadRow],
    notes: list[str],
) -> str:
    """The printed report: the settings, one table line per point, the Triton notes, the gateway's overhead."""
    table = render(
        ["setup", "clients", "req/s", "frames/s", "p50 ms", "p90 ms", "p99 ms", "errors"],
        [
            [
                *(r.setup, r.concurrency, r.requests / r.seconds, r.frames / r.seconds),
                *(r.percentile(50), r.percentile(90), r.percentile(99), r.errors + r.rejected),
            ]
            for r in rows
        ],
    )
    rate = {r.setup: r.frames / r.seconds for r in rows if r.concurrency == top}
    ratio = rate["gateway -> Triton"] / rate["direct Triton client"] if rate.get("direct Triton client") else 0.0
    return "\n".join(
        [
            f"model {model_dir} ({'Triton at ' + triton_url if triton_url else 'local CPU Triton'}), {frames}-frame "
            f"sequences, flip {'on' if flip else 'off'}, {seconds:g} s per point, {os.cpu_count()} cores",
            "",
            table,
            "",
            *notes,
            "",
            f"gateway -> Triton / direct Triton client at {top} clients: {ratio:.2f} x (frames/s)",
        ]
    )
