"""The model's side of the core: normalised windows through the shared batcher to the backend, and back.

Every window of every request and stream goes through ``Inference.windows``, so they share batches; the flip
test runs both halves in the same submission. The batcher's frame budget per batch follows the model's width
(``frame_budget``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from service.config import Settings
from service.core import keypoints, windows
from service.core.backend import Array, Backend, ModelInfo
from service.core.batcher import Batcher, Done
from service.core.metrics import Metrics
from service.core.results import Stamps
from service.core.trace import Tracer
from service.errors import DeadlineExceeded, Unavailable

# Batching pays while a batch's activations stay in cache and costs once they spill (then elementwise work turns
# memory-bound). Measured on this 2-core CPU (frames/s at batch B vs batch 1, TorchScript): tiny (width 64) gains
# up to 1.9x until ~650 frames per batch; small (128) gains until ~320 frames; full (512) is flat at 4 x 27
# frames and loses 10% at 9 x 27. All three turn over near the same frames x width, so the default frame budget
# per batch is that product divided by the model's width (docs: README "Batching").
ACTIVATION_BUDGET = 40_960


def frame_budget(info: ModelInfo) -> int:
    """Default most frames per batch for a model: ``ACTIVATION_BUDGET / dim_feat`` (at least one window)."""
    width = info.hyperparams.get("dim_feat", 256)
    width = width if isinstance(width, int) and not isinstance(width, bool) else 256
    return max(1, ACTIVATION_BUDGET // max(1, width))  # a window over the budget still runs, alone


class Piece(NamedTuple):
    """One window in the batcher: its normalised frames and the first row wanted (``Backend.infer``). Windows
    batch together when both their lengths and their first rows agree."""

    window: Array
    first: int


class Inference:
    """Owns the batcher over ``backend``: ``start()`` after the backend has started (it sizes batches from the
    model), the caller closes the batcher and the backend."""

    def __init__(self, backend: Backend, settings: Settings, metrics: Metrics, tracer: Tracer) -> None:
        self.backend = backend
        self.settings = settings
        self.tracer = tracer
        self.batcher: Batcher[Piece, Array] = Batcher(
            self._run_batch,
            key=lambda piece: (len(piece.window), piece.first),
            cost=lambda piece: len(piece.window),
            max_batch_size=settings.max_batch_size,
            max_batch_cost=settings.max_batch_frames or 1,  # set from the model in start() when None
            max_delay_s=settings.max_queue_delay_ms / 1000,
            max_queued=settings.max_queued_windows,
            on_batch=metrics.on_batch,
            tracer=tracer,
        )

    async def start(self) -> None:
        if self.settings.max_batch_frames is None:
            self.batcher.max_batch_cost = frame_budget(self.backend.info)
        self.batcher.max_running = max(1, self.backend.concurrency)
        self.batcher.max_ahead = self.backend.ahead
        await self.batcher.start()

    async def _run_batch(self, items: list[Piece]) -> list[Array]:
        with self.tracer.span("backend", kind="client") as span:
            if self.tracer.on:
                span.set("motionlift.backend", self.settings.backend)
                span.set("motionlift.device", self.backend.info.device)
                span.set("motionlift.batch.size", len(items))
            batch = np.stack([piece.window for piece in items])
            out = await self.backend.infer(batch, first=items[0].first, headers=self.tracer.headers())
        # A remote backend's servers join and leave (Triton discovery): keep as many batches going as it takes now.
        self.batcher.max_running = max(1, self.backend.concurrency)
        return list(out)

    async def windows(
        self, inputs: Sequence[Array], *, flip: bool, last: int = 0, timeout_s: float | None = None
    ) -> tuple[list[Array], Stamps]:
        """Run normalised H36M windows ``[T_i, 17, 3]`` through the shared batcher; the outputs in order.

        ``last`` > 0: only the last ``last`` rows of each window are wanted, and the model skips work for the
        others (``DSTformer.forward_from``); each output is ``[min(T_i, last), 17, 3]``. With ``flip`` each
        window also runs flipped and the two answers are averaged as the official flip test does:
        ``(f(x) + flip(f(flip(x)))) / 2``. All windows are queued or none (``Overloaded``).
        Raises ``Unavailable``, ``Overloaded``, ``DeadlineExceeded`` and ``BackendError``.
        """
        if not self.backend.ready:
            raise Unavailable("the model is not ready")
        timeout = self.settings.timeout_s if timeout_s is None else min(timeout_s, self.settings.timeout_s)
        count = len(inputs)
        self.check_room(count * (2 if flip else 1))
        windows_in = list(inputs)
        if flip:
            windows_in.extend(keypoints.flip(w) for w in inputs)
        batch = [Piece(w, max(0, len(w) - last) if last > 0 else 0) for w in windows_in]
        with self.tracer.span("queue") as span:
            t0 = time.perf_counter()
            futures = self.batcher.submit(batch, deadline=time.monotonic() + timeout, trace=self.tracer.current())
            try:
                _, pending = await asyncio.wait(futures, timeout=timeout)
            finally:
                for future in futures:
                    future.cancel()  # no-op on finished ones; drops the rest from the queue
            if pending:
                raise DeadlineExceeded(f"no answer within {timeout:g} s; the request was dropped")
            results: list[Done[Array]] = [f.result() for f in futures]  # re-raises a batch's error
            wait_ms = 1000 * (time.perf_counter() - t0)
            if self.tracer.on:
                span.set("motionlift.windows", len(batch))
                span.set("motionlift.batches", len({r.batch_id for r in results}))
        outputs = [r.value for r in results]
        if flip:
            half = np.float32(0.5)
            outputs = [(a + keypoints.flip(b)) * half for a, b in zip(outputs[:count], outputs[count:], strict=True)]
        batches = {r.batch_id: r.compute_s for r in results}
        inference_ms = min(1000 * sum(batches.values()), wait_ms)
        stamps = Stamps(
            queue_ms=max(0.0, wait_ms - inference_ms),
            inference_ms=inference_ms,
            batch_size=max(r.batch_size for r in results),
            batches=len(batches),
            windows=len(batch),
        )
        return outputs, stamps

    def check_room(self, needed: int) -> None:
        """Raises ``PayloadTooLarge`` (413 naming the limit) when ``needed`` windows exceed what the queue can ever
        hold: no retry can help."""
        if needed > self.batcher.max_queued:  # could never be queued: no retry can help
            raise windows.too_many(needed, self.batcher.max_queued)
