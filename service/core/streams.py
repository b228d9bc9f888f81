"""Live lifting: per-track stream state over the shared batcher. Transport-free (the gRPC edge drives it).

A ``StreamSession`` keeps, for every track of one stream, a ring buffer of its last ``window`` normalised
frames. Windows go through ``Lifter.infer_windows`` (``service.core.inference``), so the windows of every stream
batch together. Semantics (also stated in proto/motionlift/v1/lift.proto, ``StreamConfig``):

- **causal** (``lookahead == 0``): when frame t arrives, the window ending at t runs and answers frame t
  (its last row); no later frame is used. ``hop`` must be 1: every answered frame needs its own window.
- **look-ahead k**: frame t is answered from the window ending at t + k (row ``-1-k``). With ``hop`` h, a
  window runs once h unanswered frames have their k later frames and answers those h frames (so a frame
  sees k to k + h - 1 later frames). At the end of the stream, and when a track expires, its unanswered
  frames are answered from a final window ending at its last frame.
- Until a track has ``window`` frames, its windows hold the frames so far (shorter windows batch with
  windows of their own length only).
- **Policy ``latest`` (the default; live video), latest frame wins**: a track has at most ``IN_FLIGHT`` windows
  submitted to the model and one waiting behind them. A newer due window replaces the waiting one, whose frames
  are never answered; a window the queue refuses (``Overloaded``) is skipped too. Two in flight, not one: with
  one, any window whose round trip outlasted the frame interval cost a frame, and a busy VM's tail made that
  happen at half the model's capacity; answers still come in frame order. Skipped frames are reported in the
  answer of the track's next answered frame (``FrameAnswer.skipped``) and counted in the metrics. Answers wait
  in a bounded queue, so a client that stops reading also ends up skipping rather than piling up: a stream's
  state is bounded whatever its client does.
- **Policy ``all`` (files, recordings): nothing is skipped.** Due windows wait in line per track; a window the
  queue refuses waits and is offered again. The edge awaits ``room()`` before it pushes the next frame, which
  returns once no track has more than ``MAX_WAITING`` windows waiting: the edge stops reading, and the
  transport's flow control slows the sender down.
- **Expiry**: a track silent for ``expiry_s`` is forgotten (after its final window); a later frame with
  its id starts an empty window.

Frames are checked and normalised by the functions requests go through (``frames.check_frames``) before any
is used. With tracing on, each window run is a ``window`` span under the stream's span (the edge's, current when
the session is made), for the stream's first ``TRACED_WINDOWS`` windows: a stream's trace stays bounded however
long it lives, and later windows run untraced. Frames received, answered and skipped, and the streams open, are
counted in the service's metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import numpy as np

from service.core import windows
from service.core.backend import Array
from service.core.frames import FrameAnswer, TrackFrame, check_frames
from service.core.metrics import Metrics
from service.core.results import Stamps
from service.core.smoother import Held, Smoother
from service.core.stream_options import StreamPlan
from service.core.stream_state import Answered, End, Frame, Job, Ran, TrackState, frame_answer
from service.core.trace import NO_SPAN, OFF, Span, Tracer
from service.errors import LiftError, Overloaded

ANSWER_QUEUE = 64  # answers waiting for the client; beyond it the track workers wait (and windows skip)
MAX_WAITING = 2  # policy all: windows waiting per track before the sender is slowed down
IN_FLIGHT = 2  # windows per track submitted to the model at once (answered in order)
RETRY_S = 0.02  # policy all: how soon a window the full queue refused is offered again
TRACED_WINDOWS = 100  # windows with a span in a stream's trace; later ones run untraced


class Infer(Protocol):
    """``Lifter.infer_windows``: the shared batcher's entry for normalised windows."""

    def __call__(
        self, inputs: Sequence[Array], *, flip: bool, last: int = 0, timeout_s: float | None = None
    ) -> Awaitable[tuple[list[Array], Stamps]]: ...


class StreamSession:
    """The state of one stream (made by ``Lifter.open_stream``). ``push`` frames (sync, cheap), read
    ``answers()``, then ``finish()``; ``close()`` in every case.

    ``infer`` runs windows through the shared batcher; ``timeout_s`` returns the time left before the stream's
    deadline (``None``: no deadline). A failure of the core other than ``Overloaded`` (``Unavailable``,
    ``DeadlineExceeded``, ``BackendError``) ends the stream: ``answers()`` raises it after the answers already
    queued.
    """

    def __init__(
        self,
        infer: Infer,
        plan: StreamPlan,
        *,
        metrics: Metrics,
        max_tracks: int,
        timeout_s: Callable[[], float | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        charge: Callable[[int], None] = lambda frames: None,
        on_close: Callable[[int, str], None] = lambda frames, outcome: None,
        tracer: Tracer = OFF,
    ) -> None:
        self._infer = infer
        self.plan = plan
        self._metrics = metrics
        self._max_tracks = max_tracks
        self._timeout_s = timeout_s
        self._clock = clock
        self._charge = charge  # the caller's frames-per-second quota: raises QuotaExceeded over it
        self._on_close = on_close  # (frames received, outcome): the caller's stream slot ends, the audit line
        self._received = 0
        self._outcome = "ok"
        self._tracks: dict[str, TrackState] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[FrameAnswer | End] = asyncio.Queue(ANSWER_QUEUE)
        self._reaper: asyncio.TimerHandle | None = None
        self._room = asyncio.Event()  # policy all: set while no track has MAX_WAITING windows waiting
        self._room.set()
        self._stopped = False  # failed or closed: produce nothing more
        self._closed = False
        self._tracer = tracer
        self._trace = tracer.current()  # the stream's span: the parent of its windows' spans
        self._windows = 0  # windows run so far
        metrics.streams.inc()

    @property
    def tracks(self) -> list[str]:
        """Ids of the live tracks."""
        return list(self._tracks)

    def push(self, frames: Sequence[TrackFrame]) -> None:
        """Add one video frame's tracks. All are validated and charged first: on ``InvalidInput`` or
        ``QuotaExceeded`` none is used."""
        now = self._clock()
        self._expire(now)
        last = {tid: track.last_index for tid, track in self._tracks.items()}
        checked = check_frames(frames, self.plan.options, last_index=last, max_tracks=self._max_tracks)
        self._charge(len(frames))
        self._received += len(frames)
        self._metrics.stream_frames.labels("received").inc(len(frames))
        for frame, pose in zip(frames, checked, strict=True):
            track = self._tracks.get(frame.track_id)
            if track is None:
                window = self.plan.window
                track = TrackState(
                    frame.track_id, deque(maxlen=window), deque(maxlen=window), Smoother(self.plan.options)
                )
                self._tracks[frame.track_id] = track
            index = frame.frame_index
            if index is None:  # the previous one + 1
                index = 0 if track.last_index is None else track.last_index + 1
            track.ring.append(pose)
            track.frames.append(Frame(track.count, index, frame.timestamp_s, now))
            track.count += 1
            track.last_index = index
            track.last_seen = now
            # Due once `hop` unanswered frames have their `lookahead` later frames.
            if track.count - self.plan.lookahead - track.scheduled >= self.plan.hop:
                self._schedule(track, track.count - self.plan.lookahead, now)
        self._arm_reaper()

    async def room(self) -> None:
        """Return when the session can take another frame without skipping: at once for policy ``latest``; for
        ``all``, once no track has ``MAX_WAITING`` windows waiting (or the stream stopped)."""
        while not self._room.is_set() and not self._stopped:
            await self._room.wait()

    async def answers(self) -> AsyncIterator[FrameAnswer]:
        """Answers in frame order per track, until ``finish()`` completes; raises the stream's failure."""
        while True:
            item = await self._queue.get()
            if isinstance(item, FrameAnswer):
                yield item
            elif item.error is not None:
                raise item.error
            else:
                return

    async def finish(self) -> None:
        """The client sent its last frame: answer every track's remaining frames, then end ``answers()``."""
        for track in list(self._tracks.values()):
            self._retire(track, self._clock())
        while self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)
        await self._end(End())

    async def fail(self, error: LiftError) -> None:
        """End the stream with ``error`` (e.g. a bad frame): ``answers()`` raises it after the queued answers."""
        self._outcome = error.code
        await self._end(End(error))

    async def close(self) -> None:
        """Drop everything (the client went away or the stream failed): no more answers. Idempotent."""
        if not self._closed:
            self._closed = True
            self._metrics.streams.dec()
            self._on_close(self._received, self._outcome)
        self._stopped = True
        self._room.set()
        if self._reaper is not None:
            self._reaper.cancel()
        for task in list(self._workers):
            task.cancel()
        for task in list(self._workers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _schedule(self, track: TrackState, end: int, now: float) -> None:
        """Make the window ending at the track's newest frame answer frames ``[scheduled, end)``."""
        first = track.count - len(track.ring)
        answer = [f for f in track.frames if track.scheduled <= f.number < end]
        track.scheduled = end
        job = Job(np.stack(track.ring), first, answer, now, skipped=track.unreported)
        track.unreported = 0
        if track.waiting and self.plan.policy == "latest":  # latest frame wins: the waiting window is stale
            stale = track.waiting.popleft()
            job.skipped += stale.skipped + len(stale.answer)
            self._metrics.stream_frames.labels("skipped").inc(len(stale.answer))
        track.waiting.append(job)
        self._launch(track)
        if len(track.waiting) >= MAX_WAITING and self.plan.policy == "all":
            self._room.clear()
        self._start(track)

    def _start(self, track: TrackState) -> None:
        if track.worker is None:
            track.worker = asyncio.create_task(self._work(track), name=f"stream track {track.id}")
            self._workers.add(track.worker)
            track.worker.add_done_callback(self._workers.discard)

    def _skip(self, track: TrackState, job: Job) -> None:
        """``job`` will not run: its frames (and the skips it was to report) pass to the track's next window."""
        self._metrics.stream_frames.labels("skipped").inc(len(job.answer))
        carried = job.skipped + len(job.answer)
        later = [j for j, _ in track.running]
        later = later[later.index(job) + 1 :] if job in later else []
        if later:  # the next window to answer reports them
            later[0].skipped += carried
        elif track.waiting:
            track.waiting[0].skipped += carried
        else:
            track.unreported += carried

    def _launch(self, track: TrackState) -> None:
        """Submit the track's waiting windows while fewer than ``IN_FLIGHT`` of its windows run."""
        while track.waiting and len(track.running) < IN_FLIGHT and not self._stopped:
            job = track.waiting.popleft()
            self._update_room()
            track.running.append((job, asyncio.create_task(self._infer_job(track, job))))

    async def _work(self, track: TrackState) -> None:
        """Answer the track's running windows in order, submitting the next ones as each finishes."""
        try:
            while track.running and not self._stopped:
                job, task = track.running[0]
                ran = await task
                track.running.popleft()
                if isinstance(ran, LiftError):  # ended here, not in the task: the end must wait for queue room
                    await self._end(End(ran))
                    break
                self._launch(track)
                if ran is not None:
                    await self._answer_job(track, job, ran)
            if track.ending and not self._stopped:  # its last window ran: release what the smoother holds
                for held in track.smoother.flush():
                    await self._answer(track, held)
        finally:
            for _, task in track.running:
                task.cancel()
            track.running.clear()
            track.worker = None

    async def _infer_job(self, track: TrackState, job: Job) -> Ran | LiftError | None:
        """The model's rows for ``job`` (only those of the frames it answers: a causal window's last one); None
        when it is skipped (policy ``latest`` and a full queue); the error that ends the stream."""
        options, started = self.plan.options, self._clock()
        length = len(job.window)
        wanted = length - (job.answer[0].number - job.first) if job.answer else length
        with self._span() as span:
            if self._tracer.on:
                span.set("motionlift.track", track.id)
                span.set("motionlift.frames", len(job.answer))
                span.set("motionlift.window_frames", length)
            while True:
                try:
                    outputs, stamps = await self._infer(
                        [job.window], flip=options.flip, last=wanted, timeout_s=self._timeout_s()
                    )
                    return Ran(outputs[0], stamps, started)
                except Overloaded:
                    if self.plan.policy == "latest":
                        self._skip(track, job)
                        return None
                    await asyncio.sleep(RETRY_S)  # all: nothing is skipped; the sender waits in room() meanwhile
                except LiftError as exc:
                    return exc

    async def _answer_job(self, track: TrackState, job: Job, ran: Ran) -> None:
        """Answer the frames of ``job`` from the rows it ran (through the track's smoother)."""
        options, length, stamps, started = self.plan.options, len(job.window), ran.stamps, ran.started
        # The same merge as Lifter.lift (root depth 0 at the window's first frame), so answers equal its own; rows
        # not computed are zeros that no answer reads (the first row is computed whenever it is answered).
        rows = np.zeros((length, *ran.rows.shape[1:]), np.float32)
        rows[length - len(ran.rows) :] = ran.rows
        joints = windows.merge([rows], [(0, length)], length, rootrel=options.rootrel)
        track.skipped_total += job.skipped
        ready = self._clock()
        for i, frame in enumerate(job.answer):
            row = frame.number - job.first
            answered = Answered(
                frame=frame,
                lookahead=length - 1 - row,
                window_frames=length,
                lookahead_ms=1000 * (job.due - frame.arrival),
                queue_ms=1000 * (started - job.due) + stamps.queue_ms,
                inference_ms=stamps.inference_ms,
                batch_size=stamps.batch_size,
                skipped=job.skipped if i == 0 else 0,
                skipped_total=track.skipped_total,
                ready=ready,
            )
            for held in track.smoother.feed(frame.number, joints[row], answered):
                await self._answer(track, held)

    async def _answer(self, track: TrackState, held: Held[Answered]) -> None:
        """Queue the answer of one frame; waits while the client is not reading (backpressure)."""
        await self._queue.put(frame_answer(track.id, held, self.plan.options, self._clock()))
        self._metrics.stream_frames.labels("answered").inc()

    def _span(self) -> AbstractContextManager[Span]:
        """The next window's span: under the stream's span for its first ``TRACED_WINDOWS``, then none."""
        if not self._tracer.on:
            return NO_SPAN
        self._windows += 1
        return self._tracer.span("window", parent=self._trace if self._windows <= TRACED_WINDOWS else None)

    def _update_room(self) -> None:
        if all(len(t.waiting) < MAX_WAITING for t in self._tracks.values()):
            self._room.set()

    async def _end(self, end: End) -> None:
        if self._stopped:
            return
        if end.error is not None:  # stop producing; the answers already queued go out first
            self._stopped = True
            self._room.set()  # a sender waiting for room learns of the end
            for task in list(self._workers):
                if task is not asyncio.current_task():
                    task.cancel()
        await self._queue.put(end)

    def _retire(self, track: TrackState, now: float) -> None:
        """Answer the track's unanswered frames from a window ending at its last frame, and forget it."""
        track.ending = True
        if track.scheduled < track.count:
            self._schedule(track, track.count, now)
        if track.smoother.holding:
            self._start(track)  # with no window left to run, it only releases what the smoother holds
        del self._tracks[track.id]

    def _expire(self, now: float) -> None:
        for track in list(self._tracks.values()):
            if now - track.last_seen >= self.plan.expiry_s:
                self._retire(track, now)

    def _arm_reaper(self) -> None:
        # One timer per session, so idle streams forget their tracks too. Expiries only move later as frames
        # arrive, so an armed timer is never late: when it fires it expires what is due and re-arms.
        if self._reaper is None and self._tracks and not self._stopped:
            due = min(t.last_seen for t in self._tracks.values()) + self.plan.expiry_s
            loop = asyncio.get_running_loop()
            self._reaper = loop.call_later(max(0.0, due - self._clock()), self._reap)

    def _reap(self) -> None:
        self._reaper = None
        self._expire(self._clock())
        self._arm_reaper()
