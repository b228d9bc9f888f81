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
  submitted to the model (``service.core.stream_runner`` runs them, answers in frame order) and one waiting
  behind them. A newer due window replaces the waiting one, whose frames are never answered; a window the queue
  refuses (``Overloaded``) is skipped too. Skipped frames are reported in the
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
is used. With tracing on, the stream's first windows are spans under the stream's span (the edge's, current when
the session is made; see the runner). Frames received, answered and skipped, and the streams open, are
counted in the service's metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np

from service.core.frames import FrameAnswer, TrackFrame, check_frames
from service.core.metrics import Metrics
from service.core.smoother import Held, Smoother
from service.core.stream_options import StreamPlan
from service.core.stream_runner import Infer, Runner
from service.core.stream_state import Answered, End, Frame, Job, TrackState, frame_answer
from service.core.trace import OFF, Tracer
from service.errors import LiftError

ANSWER_QUEUE = 64  # answers waiting for the client; beyond it the track workers wait (and windows skip)
MAX_WAITING = 2  # policy all: windows waiting per track before the sender is slowed down


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
        self.plan = plan
        self._metrics = metrics
        self._max_tracks = max_tracks
        self._clock = clock
        self._charge = charge  # the caller's frames-per-second quota: raises QuotaExceeded over it
        self._on_close = on_close  # (frames received, outcome): the caller's stream slot ends, the audit line
        self._received = 0
        self._outcome = "ok"
        self._tracks: dict[str, TrackState] = {}
        self._queue: asyncio.Queue[FrameAnswer | End] = asyncio.Queue(ANSWER_QUEUE)
        self._run = Runner(
            infer,
            plan,
            metrics=metrics,
            clock=clock,
            timeout_s=timeout_s,
            tracer=tracer,
            answer=self._answer,
            end=self._end,
            launched=self._update_room,
        )
        self._reaper: asyncio.TimerHandle | None = None
        self._room = asyncio.Event()  # policy all: set while no track has MAX_WAITING windows waiting
        self._room.set()
        self._closed = False
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
        while not self._room.is_set() and not self._run.stopped:
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
        while self._run.workers:
            await asyncio.gather(*self._run.workers, return_exceptions=True)
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
        self._run.stopped = True
        self._room.set()
        if self._reaper is not None:
            self._reaper.cancel()
        for task in list(self._run.workers):
            task.cancel()
        for task in list(self._run.workers):
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
        self._run.launch(track)
        if len(track.waiting) >= MAX_WAITING and self.plan.policy == "all":
            self._room.clear()
        self._run.start(track)

    async def _answer(self, track: TrackState, held: Held[Answered]) -> None:
        """Queue the answer of one frame; waits while the client is not reading (backpressure)."""
        await self._queue.put(frame_answer(track.id, held, self.plan.options, self._clock()))
        self._metrics.stream_frames.labels("answered").inc()

    def _update_room(self) -> None:
        if all(len(t.waiting) < MAX_WAITING for t in self._tracks.values()):
            self._room.set()

    async def _end(self, end: End) -> None:
        if self._run.stopped:
            return
        if end.error is not None:  # stop producing; the answers already queued go out first
            self._run.stopped = True
            self._room.set()  # a sender waiting for room learns of the end
            for task in list(self._run.workers):
                if task is not asyncio.current_task():
                    task.cancel()
        await self._queue.put(end)

    def _retire(self, track: TrackState, now: float) -> None:
        """Answer the track's unanswered frames from a window ending at its last frame, and forget it."""
        track.ending = True
        if track.scheduled < track.count:
            self._schedule(track, track.count, now)
        if track.smoother.holding:
            self._run.start(track)  # with no window left to run, it only releases what the smoother holds
        del self._tracks[track.id]

    def _expire(self, now: float) -> None:
        for track in list(self._tracks.values()):
            if now - track.last_seen >= self.plan.expiry_s:
                self._retire(track, now)

    def _arm_reaper(self) -> None:
        # One timer per session, so idle streams forget their tracks too. Expiries only move later as frames
        # arrive, so an armed timer is never late: when it fires it expires what is due and re-arms.
        if self._reaper is None and self._tracks and not self._run.stopped:
            due = min(t.last_seen for t in self._tracks.values()) + self.plan.expiry_s
            loop = asyncio.get_running_loop()
            self._reaper = loop.call_later(max(0.0, due - self._clock()), self._reap)

    def _reap(self) -> None:
        self._reaper = None
        self._expire(self._clock())
        self._arm_reaper()
