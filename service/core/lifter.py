"""The core: validate -> normalise -> windows -> batcher -> merge -> answer, with a latency breakdown.

Both front ends call ``Lifter.lift`` for requests and ``Lifter.open_stream`` for streams; nothing a caller can
get wrong is checked anywhere else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from service.config import Settings
from service.core import answer, audit, keypoints, selection, windows
from service.core.access import ANONYMOUS, Caller, settings_access
from service.core.admission import Door
from service.core.arrays import check_sequence
from service.core.backend import Array, Backend, ModelInfo
from service.core.batcher import Batcher, Done
from service.core.metrics import Metrics
from service.core.options import LiftOptions
from service.core.results import LiftResult, Stamps, Timing, TrackResult, coordinates
from service.core.stream_options import StreamOptions
from service.core.streams import StreamSession
from service.core.trace import OFF, Span, Tracer
from service.core.tracks import Track, check_tracks
from service.errors import DeadlineExceeded, LiftError, Overloaded, Unavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Prepared:
    track: Track
    spans: list[tuple[int, int]]
    first: int  # index of this track's first window in the request's window list
    inputs: Array  # the normalised keypoints [T, 17, 3] (a root trajectory measures the 2D pose's size)


# Batching pays while a batch's activations stay in cache and costs once they spill (then elementwise work turns
# memory-bound). Measured on this 2-core CPU (frames/s at batch B vs batch 1, TorchScript): tiny (width 64) gains
# up to 1.9x until ~650 frames per batch; small (128) gains until ~320 frames; full (512) is flat at 4 x 27
# frames and loses 10% at 9 x 27. All three turn over near the same frames x width, so the default frame budget
# per batch is that product divided by the model's width (docs: README "Batching").
ACTIVATION_BUDGET = 40_960

# Requests with more frames than this are prepared and merged off the event loop.
OFFLOAD_FRAMES = 2_000


def frame_budget(info: ModelInfo) -> int:
    """Default most frames per batch for a model: ``ACTIVATION_BUDGET / dim_feat`` (at least one window)."""
    width = info.hyperparams.get("dim_feat", 256)
    width = width if isinstance(width, int) and not isinstance(width, bool) else 256
    return max(1, ACTIVATION_BUDGET // max(1, width))  # a window over the budget still runs, alone


class Lifter:
    """Owns the backend and the batcher. ``start()`` loads the model; ``close()`` drains and releases.

    ``tracer`` (``service.core.trace``; off by default) gets a span for every stage the latency breakdown times:
    ``lift`` > ``prepare``, ``queue`` (> the batcher's ``batch`` > ``backend``), ``answer``."""

    def __init__(self, backend: Backend, settings: Settings, *, tracer: Tracer = OFF) -> None:
        self.backend = backend
        self.settings = settings
        self.tracer = tracer
        self.metrics = Metrics()
        self.draining = False
        self.batcher: Batcher[Array, Array] = Batcher(
            self._run_batch,
            key=len,
            cost=len,
            max_batch_size=settings.max_batch_size,
            max_batch_cost=settings.max_batch_frames or 1,  # set from the model in start() when None
            max_delay_s=settings.max_queue_delay_ms / 1000,
            max_queued=settings.max_queued_windows,
            on_batch=self.metrics.on_batch,
            tracer=tracer,
        )
        self.door = Door(settings.max_queued_windows)
        self.access = settings_access(settings)
        self.metrics.watch(queue_depth=lambda: self.batcher.queued, ready=lambda: float(self.backend.ready))

    @property
    def ready(self) -> bool:
        """The model serves and the service is not shutting down (what /readyz and gRPC health report)."""
        return self.backend.ready and not self.draining

    def drain(self) -> None:
        """Shutdown has begun: ``ready`` turns False and new requests and streams are refused with ``Unavailable``;
        work already admitted goes on. Irreversible."""
        self.draining = True

    def admit(self, *, door: bool = True) -> None:
        """Admission before any work, from what is cheap to know: raises ``Unavailable`` (not ready, shutting
        down) or ``Overloaded`` (the request would likely not find room in the queue, so it is not worth reading).
        The edges call it before reading or decoding a request (and count a refusal with ``refused``).

        ``door``: this is the request's first check, which reserves room for it (``service.core.admission``);
        False: a later check of a request already admitted, which only refuses when the queue is full."""
        if not self.ready:
            raise Unavailable(self._unavailable())
        free = self.batcher.max_queued - self.batcher.queued
        if free <= 0 or (door and not self.door.admit(free, time.monotonic())):
            raise self.batcher.overloaded()

    def _unavailable(self) -> str:
        return "the service is shutting down" if self.draining else "the model is not ready"

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    async def start(self) -> None:
        await self.backend.start()
        if self.settings.max_batch_frames is None:
            self.batcher.max_batch_cost = frame_budget(self.backend.info)
        self.batcher.max_running = max(1, self.backend.concurrency)
        await self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()
        await self.backend.close()

    async def _run_batch(self, items: list[Array]) -> list[Array]:
        with self.tracer.span("backend", kind="client") as span:
            if self.tracer.on:
                span.set("motionlift.backend", self.settings.backend)
                span.set("motionlift.device", self.backend.info.device)
                span.set("motionlift.batch.size", len(items))
            out = await self.backend.infer(np.stack(items), headers=self.tracer.headers())
        # A remote backend's servers join and leave (Triton discovery): keep as many batches going as it takes now.
        self.batcher.max_running = max(1, self.backend.concurrency)
        return list(out)

    async def lift(
        self,
        tracks: Sequence[Track],
        options: LiftOptions,
        *,
        timeout_s: float | None = None,
        protocol: str = "rest",
        caller: Caller = ANONYMOUS,
        request_id: str = "-",
    ) -> LiftResult:
        """Lift every track to 3D.

        ``timeout_s`` (e.g. a gRPC deadline) shortens the configured ``timeout_s``, never lengthens it.
        Raises ``InvalidInput`` (bad keypoints or options), ``Unavailable`` (model not ready),
        ``Overloaded`` (queue full: nothing was queued), ``QuotaExceeded`` (``caller`` over its frames per
        second, ``service.core.access``), ``DeadlineExceeded`` (the deadline passed:
        queued windows are dropped) and ``BackendError`` (also for an answer that is not finite). The outcome
        (by ``protocol``) and stage latencies go to ``metrics``; cancelling the call (client gone) drops its queued
        windows.
        """
        t0 = time.perf_counter()
        outcome = "internal"
        with self.tracer.span("lift") as span:
            try:
                result = await self._lift(tracks, options, timeout_s, caller)
                outcome = "ok"
            except LiftError as exc:
                outcome = exc.code
                raise
            except asyncio.CancelledError:
                outcome = "cancelled"  # the client went away; its windows were dropped
                raise
            finally:
                if outcome != "ok":
                    self.metrics.on_request(protocol, outcome)
                frames = sum(t.keypoints.shape[0] if t.keypoints.ndim else 0 for t in tracks)
                audit.request(caller, request_id, protocol, frames, outcome, 1000 * (time.perf_counter() - t0))
                if self.tracer.on:
                    _describe(span, request_id, protocol, len(tracks), frames, outcome)
            if self.tracer.on:
                result.timing.to_span(span)
        self.metrics.on_request(protocol, "ok", result.timing.stages_ms())
        return result

    def refused(
        self,
        error: LiftError,
        *,
        protocol: str,
        admitted: bool = True,
        caller: Caller = ANONYMOUS,
        request_id: str = "-",
    ) -> LiftError:
        """Count a request an edge refused before it reached ``lift`` (a body it could not read or decode, or
        one turned away at admission), so every request has its outcome in the metrics; returns ``error`` for
        the edge to raise. ``admitted``: the door had let it in (its reservation ends now); False for a refusal
        at the door itself."""
        if admitted and not isinstance(error, Overloaded | Unavailable):
            self.door.settle(None)
        self.metrics.on_request(protocol, error.code)
        audit.request(caller, request_id, protocol, 0, error.code, 0.0)
        return error

    def open_stream(
        self,
        options: StreamOptions,
        *,
        timeout_s: Callable[[], float | None] = lambda: None,
        caller: Caller = ANONYMOUS,
        request_id: str = "-",
    ) -> StreamSession:
        """A new stream over the shared batcher (``service.core.streams``); ``close()`` it when done.

        ``timeout_s`` returns the time the stream has left (a gRPC deadline). Raises ``Unavailable`` when the
        model is not ready, ``InvalidInput`` naming ``config.<field>`` for a configuration it cannot serve and
        ``QuotaExceeded`` when ``caller`` has its quota of streams open; its frames draw on its frames per second
        (a frame over it ends the stream with ``QuotaExceeded``).
        """
        if not self.ready:
            raise Unavailable(self._unavailable())
        plan = options.resolve(model_window=self.backend.info.window)
        end = self.access.open_stream(caller)
        audit.stream(caller, request_id, "open")

        def closed(frames: int, outcome: str) -> None:
            end()
            audit.stream(caller, request_id, "close", frames, outcome)

        return StreamSession(
            self.infer_windows,
            plan,
            metrics=self.metrics,
            max_tracks=self.settings.max_tracks,
            timeout_s=timeout_s,
            charge=lambda frames: self.access.charge(caller, frames),
            on_close=closed,
            tracer=self.tracer,
        )

    async def _lift(
        self, tracks: Sequence[Track], options: LiftOptions, timeout_s: float | None, caller: Caller
    ) -> LiftResult:
        t0 = time.perf_counter()
        try:
            if not self.ready:
                raise Unavailable(self._unavailable())
            window = self.backend.info.window
            options.check(window=window)
            check_tracks(tracks, max_tracks=self.settings.max_tracks)
            frames = sum(t.keypoints.shape[0] if t.keypoints.ndim else 0 for t in tracks)
            self.access.charge(caller, frames)
        except LiftError:
            self.door.settle(None)  # it will not reach the queue: its reservation ends now
            raise
        try:
            return await self._run(tracks, options, timeout_s, window, t0)
        except (Overloaded, Unavailable):  # the service's state, not the caller's use: its frames are given back
            self.access.refund(caller, frames)
            raise

    async def _run(
        self, tracks: Sequence[Track], options: LiftOptions, timeout_s: float | None, window: int, t0: float
    ) -> LiftResult:
        overlap = options.overlap if options.overlap is not None else self._default_overlap(window)
        self._check_fits(tracks, window, overlap, options.flip)  # settles the door's reservation
        # Big requests are checked, normalised and merged in a worker thread so the event loop keeps answering
        # others (the float64 arithmetic of the official conventions is a few ms per 1,000 frames).
        offload = sum(len(t.keypoints) for t in tracks) > OFFLOAD_FRAMES
        with self.tracer.span("prepare"):
            if offload:
                prepared, inputs = await asyncio.to_thread(self._prepare, tracks, options, window, overlap)
            else:
                prepared, inputs = self._prepare(tracks, options, window, overlap)
        t1 = time.perf_counter()
        outputs, stamps = await self.infer_windows(inputs, flip=options.flip, timeout_s=timeout_s)
        t2 = time.perf_counter()
        with self.tracer.span("answer"):
            if offload:
                answers = await asyncio.to_thread(self._answers, prepared, outputs, options)
            else:
                answers = self._answers(prepared, outputs, options)
        t3 = time.perf_counter()
        timing = Timing(
            preprocess_ms=1000 * (t1 - t0),
            queue_ms=stamps.queue_ms,
            inference_ms=stamps.inference_ms,
            postprocess_ms=1000 * (t3 - t2),
            total_ms=1000 * (t3 - t0),
            batch_size=stamps.batch_size,
            batches=stamps.batches,
            windows=stamps.windows,
        )
        return LiftResult(answers, timing, coordinates(options))

    async def infer_windows(
        self, inputs: Sequence[Array], *, flip: bool, timeout_s: float | None = None
    ) -> tuple[list[Array], Stamps]:
        """Run normalised H36M windows ``[T_i, 17, 3]`` through the shared batcher; the outputs in order.

        With ``flip`` each window also runs flipped and the two answers are averaged as the official flip
        test does: ``(f(x) + flip(f(flip(x)))) / 2``. All windows are queued or none (``Overloaded``).
        Raises ``Unavailable``, ``Overloaded``, ``DeadlineExceeded`` and ``BackendError``.
        """
        if not self.backend.ready:
            raise Unavailable("the model is not ready")
        timeout = self.settings.timeout_s if timeout_s is None else min(timeout_s, self.settings.timeout_s)
        count = len(inputs)
        self._check_windows(count * (2 if flip else 1))
        batch = list(inputs)
        if flip:
            batch.extend(keypoints.flip(w) for w in inputs)
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

    def _prepare(
        self, tracks: Sequence[Track], options: LiftOptions, window: int, overlap: int
    ) -> tuple[list[_Prepared], list[Array]]:
        """Validate every track, keep those the track policy selects (``service.core.selection``), normalise them
        and cut them into windows (all tracks' windows in one list)."""
        checked = [replace(t, keypoints=self._check(t, options)) for t in tracks]
        prepared: list[_Prepared] = []
        inputs: list[Array] = []
        for track in selection.select(checked, options):
            x = keypoints.normalise(track.keypoints, options, field=track.field)
            spans = windows.plan(len(x), window, overlap)
            prepared.append(_Prepared(track, spans, len(inputs), x))
            inputs.extend(x[s:e] for s, e in spans)
        return prepared, inputs

    def _check_fits(self, tracks: Sequence[Track], window: int, overlap: int, flip: bool) -> None:
        """Before any work: the windows the request needs (from its frame counts alone) must fit the queue. The
        request is past the door now: its reservation ends, and the door learns its size."""
        frames = [t.keypoints.shape[0] if t.keypoints.ndim else 0 for t in tracks]
        needed = windows.needed(frames, window, overlap, flip=flip)
        self.door.settle(needed)
        self._check_windows(needed)

    def _check_windows(self, needed: int) -> None:
        if needed > self.batcher.max_queued:  # could never be queued: no retry can help
            raise windows.too_many(needed, self.batcher.max_queued)

    def capacity(self) -> windows.Capacity | None:
        """What the queue can ever hold, for checks made before a request's arrays exist; None until the model
        is loaded (its window is not known before)."""
        if not self.backend.ready:
            return None
        window = self.backend.info.window
        return windows.Capacity(window, self._default_overlap(window), self.batcher.max_queued)

    def _answers(self, prepared: list[_Prepared], outputs: list[Array], options: LiftOptions) -> list[TrackResult]:
        return [self._answer(p, outputs, options) for p in prepared]

    def _default_overlap(self, window: int) -> int:
        if self.settings.overlap is not None:
            return min(self.settings.overlap, window - 1)
        return window // 4

    def _check(self, track: Track, options: LiftOptions) -> Array:
        return check_sequence(
            track.keypoints, format=options.format, field=track.field, max_frames=self.settings.max_frames
        )

    def _answer(self, p: _Prepared, outputs: list[Array], options: LiftOptions) -> TrackResult:
        own = outputs[p.first : p.first + len(p.spans)]
        return answer.track(p.track, own, p.spans, p.inputs, options)


def _describe(span: Span, request_id: str, protocol: str, tracks: int, frames: int, outcome: str) -> None:
    span.set("motionlift.request_id", request_id)
    span.set("motionlift.protocol", protocol)
    span.set("motionlift.tracks", tracks)
    span.set("motionlift.frames", frames)
    span.set("motionlift.outcome", outcome)
