"""Load benchmark of the served model: an asyncio load generator against a real server process.

One run measures, side by side: the raw backend (the TorchScript file called directly, at several batch
sizes), then the service started as a subprocess in each configuration (e.g. batched, and unbatched with
``--max-batch-size 1``) under a sweep of concurrent clients, each sending the same sequence back to back.
While the model is saturated, a side task measures ``GET /healthz`` latency (the event loop must stay free).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.bench.process import free_port, wait_ready


@dataclass
class LoadRow:
    setup: str
    concurrency: int
    requests: int = 0
    rejected: int = 0
    errors: int = 0
    seconds: float = 0.0
    frames: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    model_frames: int = 0  # frames the model ran for the answered requests (windows x window length)
    health_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float, values: Sequence[float] | None = None) -> float:
        data = self.latencies_ms if values is None else values
        return float(np.percentile(data, q)) if data else float("nan")


def request_body(frames: int, *, flip: bool) -> bytes:
    """A deterministic smooth COCO-17 sequence in pixels of a 1920x1080 video."""
    rng = np.random.default_rng(0)
    base = rng.uniform([700, 300], [1200, 900], size=(17, 2))
    t = np.arange(frames)[:, None, None]
    xy = base[None] + 40 * np.sin(t / 15 + np.arange(17)[None, :, None])
    kp = np.concatenate([xy, np.full((frames, 17, 1), 0.9)], axis=-1).round(2)
    body = {"keypoints": kp.tolist(), "format": "coco", "image_size": [1920, 1080], "flip": flip}
    return json.dumps(body).encode()


class ServerProcess:
    """``motionlift serve`` in a subprocess on free ports; stopped with SIGTERM."""

    def __init__(self, model: Path, flags: Sequence[str]) -> None:
        self.port = free_port()
        self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        cmd = [
            sys.executable,
            "-m",
            "service",
            "serve",
            "--model",
            str(model),
            "--port",
            str(self.port),
            "--grpc-port",
            str(self.grpc_port),
            "--log-level",
            "warning",
            *flags,
        ]
        self.proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait_ready(self, seconds: float = 300) -> None:
        wait_ready(self.proc, f"{self.url}/readyz", seconds)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Connection:
    """A minimal HTTP/1.1 keep-alive client: the benchmark must spend its CPU on the server, not on itself
    (on a 2-core machine an httpx client costs about as much CPU per request as the server's own work)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-type: application/json\r\n"
        self.writer.write(head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        content = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection") == "close":
            self.writer.close()
            self.reader = self.writer = None
        return status, headers, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


BATCH_SIZE = re.compile(rb'"batch_size":(\d+)')
WINDOWS = re.compile(rb'"windows":(\d+)')


async def ping_health(url: str, stop: float, row: LoadRow) -> None:
    """``GET /healthz`` every 50 ms until ``stop``: its latency shows whether the event loop is ever blocked."""
    host, port = url.removeprefix("http://").split(":")
    conn = Connection(host, int(port))
    try:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await conn.request("GET", "/healthz")
            row.health_ms.append(1000 * (time.perf_counter() - t0))
            await asyncio.sleep(0.05)
    finally:
        conn.close()


async def drive(
    url: str, body: bytes, frames: int, concurrency: int, seconds: float, setup: str, window: int
) -> LoadRow:
    """``concurrency`` clients send ``body`` back to back for ``seconds``; /healthz is pinged meanwhile."""
    row = LoadRow(setup, concurrency)
    host, port = url.removeprefix("http://").split(":")
    stop = time.perf_counter() + seconds

    async def client_loop() -> None:
        conn = Connection(host, int(port))
        try:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                status, headers, content = await conn.request("POST", "/lift", body)
                elapsed = 1000 * (time.perf_counter() - t0)
                if status == 200:
                    match = BATCH_SIZE.search(content)
                    row.requests += 1
                    row.frames += frames
                    row.latencies_ms.append(elapsed)
                    row.batch_sizes.append(int(match.group(1)) if match else 0)
                    windows = WINDOWS.search(content)
                    row.model_frames += window * (int(windows.group(1)) if windows else 0)
                elif status == 503:
                    row.rejected += 1
                    await asyncio.sleep(float(headers.get("retry-after", "1")) / 10)
                else:
                    row.errors += 1
        finally:
            conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)), ping_health(url, stop, row))
    row.seconds = time.perf_counter() - start
    return row


def raw_backend(model: Path, frames: int, batches: Sequence[int], seconds: float) -> tuple[dict[int, float], int]:
    """Frames/s of the TorchScript file called directly (as the backend calls it) per batch size, on windows of
    the length the service cuts a ``frames``-long sequence into; and that length."""
    import torch

    from service.bench.peak import timed
    from service.model.export import load_torchscript

    torch.set_num_threads(os.cpu_count() or 1)
    scripted, meta = load_torchscript(model)
    window = min(frames, int(meta["window"]))
    out = {}
    for batch in batches:
        x = torch.randn(batch, window, 17, 3)

        def call(x: torch.Tensor = x) -> object:
            with torch.inference_mode():
                return scripted(x)

        for _ in range(2):
            call()
        out[batch] = batch * window / timed(call, min_seconds=seconds)
    return out, window
