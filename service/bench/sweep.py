"""The load benchmark in one run: the raw backend, then the server in each configuration (e.g. batched and
``--max-batch-size 1``) under a concurrency sweep over REST and gRPC, so every ratio is measured side by side."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from service.bench.grpc_load import drive_grpc
from service.bench.load import LoadRow, ServerProcess, drive, raw_backend, request_body
from service.bench.table import render


async def _point(
    server: ServerProcess,
    protocol: str,
    body: bytes,
    frames: int,
    clients: int,
    seconds: float,
    label: str,
    window: int,
) -> LoadRow:
    if protocol == "grpc":
        return await drive_grpc(server.grpc_target, server.url, body, frames, clients, seconds, label, window)
    return await drive(server.url, body, frames, clients, seconds, label, window)


def run(
    model: Path,
    *,
    frames: int,
    concurrency: Sequence[int],
    seconds: float,
    flip: bool,
    setups: dict[str, list[str]],
    raw_batches: Sequence[int],
    protocols: Sequence[str] = ("rest",),
) -> str:
    """The whole benchmark; returns the printed report."""
    raw, window = raw_backend(model, frames, raw_batches, seconds=max(2.0, seconds / 3))
    body = request_body(frames, flip=flip)
    rows: list[LoadRow] = []
    for name, flags in setups.items():
        server = ServerProcess(model, flags)
        try:
            server.wait_ready()
            for protocol in protocols:
                label = f"{name} {protocol}"
                for c in concurrency:
                    asyncio.run(_point(server, protocol, body, frames, min(c, 4), 1.0, label, window))  # warm-up
                    rows.append(asyncio.run(_point(server, protocol, body, frames, c, seconds, label, window)))
        finally:
            server.stop()
    return report(model, frames, window, seconds, flip, raw, rows, list(setups), protocols, max(concurrency))


def report(
    model: Path,
    frames: int,
    window: int,
    seconds: float,
    flip: bool,
    raw: dict[int, float],
    rows: list[LoadRow],
    setups: list[str],
    protocols: Sequence[str],
    top: int,
) -> str:
    best_batch = max(raw, key=lambda b: raw[b])
    lines = [
        f"model {model}, {frames}-frame sequences in {window}-frame windows, flip {'on' if flip else 'off'}, "
        f"{seconds:g} s per point, {os.cpu_count()} cores",
        "",
        f"raw backend (TorchScript called directly on {window}-frame windows, model frames/s):",
        render(["batch", "frames/s"], [[b, f] for b, f in raw.items()]),
        "",
        "served (frames/s = frames of answered sequences; healthz = REST /healthz pinged meanwhile):",
        _served_table(rows),
        "",
    ]
    lines += _best_vs_raw(rows, raw, best_batch)
    if len(setups) == 2:
        lines += _setup_ratios(rows, setups, protocols, top)
    return "\n".join(lines)


def _served_table(rows: list[LoadRow]) -> str:
    """The served points, one line each."""
    return render(
        [
            "setup",
            "clients",
            "req/s",
            "frames/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "mean batch",
            "rejected",
            "errors",
            "healthz p99 ms",
        ],
        [
            [
                r.setup,
                r.concurrency,
                r.requests / r.seconds,
                r.frames / r.seconds,
                r.percentile(50),
                r.percentile(95),
                r.percentile(99),
                float(np.mean(r.batch_sizes)) if r.batch_sizes else 0.0,
                r.rejected,
                r.errors,
                r.percentile(99, r.health_ms),
            ]
            for r in rows
        ],
    )


def _best_vs_raw(rows: list[LoadRow], raw: dict[int, float], best_batch: int) -> list[str]:
    """Per setup, its best point in model frames/s over the raw backend at its best batch."""
    lines = []
    for label in dict.fromkeys(r.setup for r in rows):
        best = max((r for r in rows if r.setup == label), key=lambda r: r.frames / r.seconds)
        served = best.model_frames / best.seconds
        lines.append(
            f"{label}: best {served:,.1f} model frames/s at {best.concurrency} clients = "
            f"{served / raw[best_batch]:.2f} x raw at its best batch ({best_batch})"
        )
    return lines


def _setup_ratios(rows: list[LoadRow], setups: list[str], protocols: Sequence[str], top: int) -> list[str]:
    """Per protocol, the first setup's frames/s over the second's at ``top`` clients (two setups)."""
    lines = []
    for protocol in protocols:
        a, b = (next(r for r in rows if r.setup == f"{n} {protocol}" and r.concurrency == top) for n in setups)
        ratio = (a.frames / a.seconds) / max(1e-9, b.frames / b.seconds)
        lines.append(f"{setups[0]} / {setups[1]} over {protocol} at {top} clients: {ratio:.2f} x")
    return lines
