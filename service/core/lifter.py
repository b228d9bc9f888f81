"""The core: validate -> normalise -> windows -> batcher -> merge -> answer, with a latency breakdown.

Both front ends call ``Lifter.lift`` for requests and ``Lifter.open_stream`` for streams; nothing a caller can
get wrong is checked anywhere else.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence

from service.config import Settings
from service.core import audit, windows
from service.core.access import ANONYMOUS, Caller, settings_access
from service.core.admission import Door
from service.core.backend import Array, Backend, ModelInfo
from service.core.inference import Inference
from service.core.metrics import Metrics
from service.core.options import LiftOptions
from service.core.prepare import answers, prepare
from service.core.results import LiftResult, Stamps, Timing, coordinates
from service.core.stream_options import StreamOptions
from service.core.streams import StreamSession
from service.core.trace import OFF, Span, Tracer
from service.core.tracks import Track, check_tracks
from service.errors import LiftError, Overloaded, Unavailable

log = logging.getLogger(__name__)


# Requests with more frames than this are prepared and merged off the event loop.
OFFLOAD_FRAMES = 2_000


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
        self.inference = Inference(backend, settings, self.metrics, tracer)
        self.batcher = self.inference.batcher
        self.door = Door(settings.max_queued_windows)
        self.refusals = audit.Refusals()  # audit lines of refusals, at most 20 a second (audit.py says why)
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
        await self.inference.start()

    async def close(self) -> None:
        self.refusals.flush()
        await self.batcher.close()
        await self.backend.close()

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
        self.refusals.refused(caller, request_id, protocol, error.code)
        return error

    def abandoned(self, protocol: str) -> None:
        """Count a request the door admitted whose client left before its body or message was read: its outcome is
        ``cancelled``, and its reservation of queue room (``service.core.admission``) ends now, not at expiry."""
        self.door.settle(None)
        self.metrics.on_request(protocol, "cancelled")

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
        prep = functools.partial(
            prepare, tracks, options, window=window, overlap=overlap, max_frames=self.settings.max_frames
        )
        with self.tracer.span("prepare"):
            prepared, inputs = await asyncio.to_thread(prep) if offload else prep()
        t1 = time.perf_counter()
        outputs, stamps = await self.infer_windows(inputs, flip=options.flip, timeout_s=timeout_s)
        t2 = time.perf_counter()
        with self.tracer.span("answer"):
            if offload:
                answered = await asyncio.to_thread(answers, prepared, outputs, options)
            else:
                answered = answers(prepared, outputs, options)
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
        return LiftResult(answered, timing, coordinates(options))

    async def infer_windows(
        self, inputs: Sequence[Array], *, flip: bool, last: int = 0, timeout_s: float | None = None
    ) -> tuple[list[Array], Stamps]:
        """``Inference.windows``: normalised windows through the shared batcher (streams and requests)."""
        return await self.inference.windows(inputs, flip=flip, last=last, timeout_s=timeout_s)

    def _check_fits(self, tracks: Sequence[Track], window: int, overlap: int, flip: bool) -> None:
        """Before any work: the windows the request needs (from its frame counts alone) must fit the queue. The
        request is past the door now: its reservation ends, and the door learns its size."""
        frames = [t.keypoints.shape[0] if t.keypoints.ndim else 0 for t in tracks]
        needed = windows.needed(frames, window, overlap, flip=flip)
        self.door.settle(needed)
        self.inference.check_room(needed)

    def capacity(self) -> windows.Capacity | None:
        """What the queue can ever hold, for checks made before a request's arrays exist; None until the model
        is loaded (its window is not known before)."""
        if not self.backend.ready:
            return None
        window = self.backend.info.window
        return windows.Capacity(window, self._default_overlap(window), self.batcher.max_queued)

    def _default_overlap(self, window: int) -> int:
        if self.settings.overlap is not None:
            return min(self.settings.overlap, window - 1)
        return window // 4


def _describe(span: Span, request_id: str, protocol: str, tracks: int, frames: int, outcome: str) -> None:
    span.set("motionlift.request_id", request_id)
    span.set("motionlift.protocol", protocol)
    span.set("motionlift.tracks", tracks)
    span.set("motionlift.frames", frames)
    span.set("motionlift.outcome", outcome)
