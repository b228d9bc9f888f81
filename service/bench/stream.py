"""Streaming benchmark: N simulated 30 fps cameras, each on its own ``LiftStream``, against a real server process.

Each stream sends one frame every 1/fps s on an absolute schedule (real pacing; streams are staggered within
a frame period, as independent cameras are) and reads answers as they come. Per frame, latency is from just
before the client sends it to when the client has its answer, so it includes the look-ahead wait. Only the
steady state counts: each stream's first ``window`` frames (its window filling, shapes the model has not seen)
are sent but not measured, and each point follows an unmeasured warm-up at the same load. A frame never
answered was skipped by the service's latest-frame-wins policy (the end of a stream answers all the rest).
A point *holds* when no frame was skipped and p99 <= the budget: ``--budget-ms`` in causal mode, plus
``(lookahead + hop - 1) / fps`` s in look-ahead mode (the longest a frame waits for the later frames its window
needs; ``lookahead / fps`` with hop 1). For each mode, N doubles until a point fails; the table reports every
point and the largest N that held.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SIZE = (1920.0, 1080.0)


@dataclass(frozen=True)
class Mode:
    """A stream configuration: ``lookahead`` 0 is causal."""

    lookahead: int = 0
    hop: int = 1

    @property
    def name(self) -> str:
        if not self.lookahead:
            return "causal"
        return f"lookahead {self.lookahead}" + (f", hop {self.hop}" if self.hop > 1 else "")

    def budget_ms(self, base_ms: float, fps: float) -> float:
        wait = self.lookahead + self.hop - 1 if self.lookahead else 0
        return base_ms + 1000 * wait / fps


def parse_modes(text: str) -> list[Mode]:
    """``causal,lookahead:8,lookahead:8:4`` -> modes; ``ValueError`` for anything else."""
    modes = []
    for item in text.split(","):
        name, *numbers = item.strip().split(":")
        if name == "causal" and not numbers:
            modes.append(Mode())
        elif name == "lookahead" and 1 <= len(numbers) <= 2:
            k, hop = int(numbers[0]), int(numbers[1]) if len(numbers) == 2 else 1
            if k < 1 or hop < 1:
                raise ValueError(f"look-ahead and hop must be >= 1: {item!r}")
            modes.append(Mode(k, hop))
        else:
            raise ValueError(f"unknown mode {item!r}; expected causal, lookahead:K or lookahead:K:HOP")
    return modes


@dataclass
class StreamRow:
    mode: Mode
    streams: int
    sent: int = 0  # measured frames (after each stream's lead-in)
    answered: int = 0
    errors: int = 0  # streams that failed (the last error in ``error``)
    error: str = ""
    seconds: float = 0.0
    cpu_s: float = 0.0  # the benchmark client's own CPU time
    latencies_ms: list[float] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Measured frames never answered."""
        return self.sent - self.answered

    def percentile(self, q: float, values: Sequence[float] | None = None) -> float:
        data = self.latencies_ms if values is None else values
        return float(np.percentile(data, q)) if data else float("nan")

    def holds(self, budget_ms: float) -> bool:
        clean = self.errors == 0 and self.skipped == 0
        return clean and self.answered > 0 and self.percentile(99) <= budget_ms


def poses(frames: int = 300) -> Any:
    """A deterministic smooth COCO-17 motion in pixels of a 1920x1080 video, ``[frames, 17, 3]``."""
    rng = np.random.default_rng(0)
    base = rng.uniform([700, 300], [1200, 900], size=(17, 2))
    t = np.arange(frames)[:, None, None]
    xy = base[None] + 40 * np.sin(t / 15 + np.arange(17)[None, :, None])
    return np.concatenate([xy, np.full((frames, 17, 1), 0.9)], axis=-1).astype(np.float32)


@dataclass(frozen=True)
class _Cameras:
    """What the cameras of one ``drive`` share: the schedule, the stream settings and the row they fill."""

    row: StreamRow
    motion: Any  # the poses every camera sends, [frames, 17, 3]
    start: float  # perf_counter() when the first camera sends frame 0
    seconds: float  # measured time after each stream's lead-in
    fps: float
    window: int | None
    flip: bool
    deadline: float  # timeout of each stream, s

    async def run(self, client: Any, offset: float) -> None:
        """One camera on ``client``, ``offset`` s after ``start``; a ``LiftError`` is counted in the row."""
        from service.errors import LiftError

        try:
            await self._paced(client, offset)
        except LiftError as exc:  # reported in the table, not fatal to the sweep
            self.row.errors += 1
            self.row.error = f"{type(exc).__name__}: {exc.message}"

    async def _paced(self, client: Any, offset: float) -> None:
        """Open the stream, send on schedule while reading answers, end it, collect the last answers."""
        mode = self.row.mode
        sent_at: dict[int, float] = {}
        config = {"window": self.window, "hop": mode.hop, "flip": self.flip}
        async with client.stream(
            format="coco", image_size=IMAGE_SIZE, mode="lookahead" if mode.lookahead else "causal",
            lookahead=mode.lookahead, timeout_s=self.deadline, **config,
        ) as stream:  # fmt: skip
            assert stream.started is not None
            lead = stream.started.window + mode.lookahead  # frames until the first full window answers
            reader = asyncio.create_task(self._read(stream, sent_at))
            try:
                await self._send(stream, offset, lead, sent_at)
                await stream.done_writing()
                await reader
            finally:  # a failed send leaves the reader to collect, not to warn about later
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)

    async def _send(self, stream: Any, offset: float, lead: int, sent_at: dict[int, float]) -> None:
        """Send a frame every 1/fps s until ``seconds`` after the lead-in; frames from ``lead`` on are measured."""
        stop = self.start + lead / self.fps + self.seconds
        i = 0
        while (due := self.start + offset + i / self.fps) < stop:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            now = time.perf_counter()
            if i >= lead:
                self.row.send_lag_ms.append(1000 * (now - due))
                sent_at[i] = now
                self.row.sent += 1
            await stream.send(self.motion[i % len(self.motion)], frame_index=i)
            i += 1

    async def _read(self, stream: Any, sent_at: dict[int, float]) -> None:
        """Record the latency and batch size of every answer to a measured frame."""
        async for answer in stream:
            sent = sent_at.pop(answer.frame_index, None)
            if sent is not None:  # a measured frame
                self.row.latencies_ms.append(1000 * (answer.received_at - sent))
                self.row.answered += 1
                self.row.batch_sizes.append(answer.latency.batch_size)


async def drive(
    target: str, mode: Mode, streams: int, seconds: float, *, fps: float = 30.0, window: int | None = None,
    flip: bool = False,
) -> StreamRow:  # fmt: skip
    """``streams`` concurrent paced streams to the gRPC ``target`` for ``seconds`` (after their lead-in); their
    measurements. A stream that fails is counted in ``errors`` (the last error in ``error``), not raised."""
    from service.client import AsyncMotionLiftClient

    row = StreamRow(mode, streams)
    motion = poses()
    clients = [AsyncMotionLiftClient(grpc=target) for _ in range(streams)]  # a connection per camera
    start = time.perf_counter() + 0.2
    # A stuck stream fails the point instead of hanging the run (243: the longest window of a model).
    deadline = 0.2 + (243 + mode.lookahead) / fps + seconds + 60
    cameras = _Cameras(row, motion, start, seconds, fps, window, flip, deadline)
    cpu = time.process_time()
    try:
        await asyncio.gather(*(cameras.run(c, k / (fps * streams)) for k, c in enumerate(clients)))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    row.seconds = time.perf_counter() - start
    row.cpu_s = time.process_time() - cpu
    return row


def sweep(
    target: str, modes: Sequence[Mode], counts: Sequence[int], *, seconds: float, budget_ms: float, fps: float,
    window: int | None, flip: bool, warmup_s: float = 1.5,
) -> list[StreamRow]:  # fmt: skip
    """Every mode at each N of ``counts`` in turn, until a point fails to hold (larger N would fail too)."""
    rows = []
    for mode in modes:
        for n in counts:
            # Warm the model's shapes for this load (windows grow to full length while a stream starts).
            asyncio.run(drive(target, mode, n, warmup_s, fps=fps, window=window, flip=flip))
            row = asyncio.run(drive(target, mode, n, seconds, fps=fps, window=window, flip=flip))
            rows.append(row)
            if not row.holds(mode.budget_ms(budget_ms, fps)):
                break
    return rows


def report(rows: Sequence[StreamRow], modes: Sequence[Mode], *, budget_ms: float, fps: float, header: str) -> str:
    """The table and, per mode, the largest N that held."""
    from service.bench.table import render

    table = render(
        ["mode", "streams", "sent", "answered", "skipped", "errors", "p50 ms", "p99 ms", "budget ms", "holds",
         "mean batch", "send lag p99 ms", "client CPU %"],
        [
            [
                r.mode.name, r.streams, r.sent, r.answered, r.skipped, r.errors,
                r.percentile(50), r.percentile(99),
                r.mode.budget_ms(budget_ms, fps), "yes" if r.holds(r.mode.budget_ms(budget_ms, fps)) else "no",
                float(np.mean(r.batch_sizes)) if r.batch_sizes else 0.0, r.percentile(99, r.send_lag_ms),
                100 * r.cpu_s / r.seconds if r.seconds else 0.0,
            ]
            for r in rows
        ],
    )  # fmt: skip
    lines = [header, "", table, ""]
    lines += [f"{r.mode.name}, {r.streams} streams: {r.errors} failed, last: {r.error}" for r in rows if r.errors]
    for mode in modes:
        held = [r.streams for r in rows if r.mode == mode and r.holds(mode.budget_ms(budget_ms, fps))]
        lines.append(f"{mode.name}: largest N sustained = {max(held, default=0)} streams at {fps:g} fps")
    return "\n".join(lines)


def run(
    model: Path, *, modes: Sequence[Mode], counts: Sequence[int], seconds: float, budget_ms: float, fps: float,
    window: int | None, flip: bool, serve_flags: Sequence[str], hog: int = 0,
) -> str:  # fmt: skip
    """Measure the compute limit, start the server on ``model`` (with ``hog`` CPU hogs beside it), sweep, stop it;
    the printed report."""
    from service.bench.limit import Hog, compute_limit
    from service.bench.load import ServerProcess

    limit = compute_limit(model, window=window or 27, fps=fps, flip=flip, cpus=len(os.sched_getaffinity(0)))
    server = ServerProcess(model, serve_flags)
    hogs = [Hog() for _ in range(hog)]
    try:
        server.wait_ready()
        for h in hogs:
            h.start()
        rows = sweep(
            server.grpc_target, modes, counts, seconds=seconds, budget_ms=budget_ms, fps=fps,
            window=window, flip=flip,
        )  # fmt: skip
    finally:
        for h in hogs:
            h.stop()
        server.stop()
    header = (
        f"model {model}, {fps:g} fps streams of COCO-17 in 1920x1080, window {window or 'of the model'}, "
        f"flip {'on' if flip else 'off'}, {seconds:g} s per point, {os.cpu_count()} cores, {hog} CPU hog(s) "
        f"beside the server; a point holds when no frame is skipped and p99 <= {budget_ms:g} ms "
        "(+ (lookahead + hop - 1) / fps in look-ahead)"
    )
    text = report(rows, modes, budget_ms=budget_ms, fps=fps, header=header)
    tried = ", ".join(f"{p} x {t} thread(s) {rate:.0f}" for p, t, rate in limit.layouts)
    return text + (
        f"\ncompute limit of causal streams (the raw model alone computing each window's last row, no hog, best of "
        f"{tried} windows/s): "
        f"{limit.processes} process(es) x {limit.threads} thread(s) at batch {limit.best_batch}, "
        f"{limit.windows_per_s:.0f} windows/s = {limit.streams:.1f} streams of {limit.per_stream:g} windows/s"
    )


def add_command(bench_sub: Any) -> None:
    """Add ``stream`` to the ``motionlift bench`` subparsers."""
    from service.config import DEFAULT_MODEL

    stream = bench_sub.add_parser("stream", help="N paced 30 fps LiftStreams: latency, skips, largest N held")
    stream.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="TorchScript model file")
    stream.add_argument("--modes", default="causal,lookahead:8,lookahead:8:8",
                        help="comma-separated: causal, lookahead:K, lookahead:K:HOP")  # fmt: skip
    stream.add_argument("--streams", default="1,2,4,8,16", help="comma-separated N to try, increasing")
    stream.add_argument("--seconds", type=float, default=10.0, help="duration of each point")
    stream.add_argument("--budget-ms", type=float, default=100.0, help="p99 budget in causal mode")
    stream.add_argument("--fps", type=float, default=30.0, help="frames per second of each stream")
    stream.add_argument("--window", type=int, default=27, help="frames per stream window (0 = the model's)")
    stream.add_argument("--flip", action="store_true", help="flip test-time augmentation (2 windows per answer)")
    stream.add_argument("--serve-flags", default="", help="extra flags of `motionlift serve`")
    stream.add_argument("--hog", type=int, default=0, help="CPU hogs (busy processes) beside the server meanwhile")
    stream.set_defaults(bench_run=_command)


def _command(args: Any) -> int:
    modes = parse_modes(args.modes)
    counts = [int(v) for v in args.streams.split(",") if v]
    report_text = run(
        args.model, modes=modes, counts=counts, seconds=args.seconds, budget_ms=args.budget_ms, fps=args.fps,
        window=args.window or None, flip=args.flip, serve_flags=args.serve_flags.split(), hog=args.hog,
    )  # fmt: skip
    print(report_text)
    return 0
