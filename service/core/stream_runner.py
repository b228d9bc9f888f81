"""A stream session's windows on the model (``service.core.streams`` says what they answer): per track, at most
``IN_FLIGHT`` windows submitted to the shared batcher at once, their frames answered in order through the
track's smoother by one worker task per track.

Two in flight, not one: with one, any window whose round trip outlasted the frame interval cost a frame, and a
busy VM's tail made that happen at half the model's capacity. A window the full queue refuses (``Overloaded``)
is skipped under policy ``latest`` (its frames reported by the track's next answered window) and offered again
after ``RETRY_S`` under ``all``. Any other failure of the core ends the stream from the track's worker, after the
answers of the windows before it. With tracing on, each window run is a ``window`` span under the stream's span
for the stream's first ``TRACED_WINDOWS`` windows; later ones run untraced, so a stream's trace stays bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import numpy as np

from service.core import windows
from service.core.backend import Array
from service.core.metrics import Metrics
from service.core.results import Stamps
from service.core.smoother import Held
from service.core.stream_options import StreamPlan
from service.core.stream_state import Answered, End, Job, Ran, TrackState
from service.core.trace import NO_SPAN, Span, Tracer
from service.errors import LiftError, Overloaded

IN_FLIGHT = 2  # windows per track submitted to the model at once (answered in order)
RETRY_S = 0.02  # policy all: how soon a window the full queue refused is offered again
TRACED_WINDOWS = 100  # windows with a span in a stream's trace; later ones run untraced


class Infer(Protocol):
    """``Lifter.infer_windows``: the shared batcher's entry for normalised windows."""

    def __call__(
        self, inputs: Sequence[Array], *, flip: bool, last: int = 0, timeout_s: float | None = None
    ) -> Awaitable[tuple[list[Array], Stamps]]: ...


class Runner:
    """Runs one session's windows. The session ``launch``es a track's waiting windows and ``start``s its worker;
    the worker hands each answer to ``answer`` (which may wait: backpressure) and a failure to ``end``;
    ``launched`` is called as a window leaves a track's waiting line. Once ``stopped`` (set by the session when
    it fails or closes) nothing more is submitted or answered; the session cancels ``workers``."""

    def __init__(
        self,
        infer: Infer,
        plan: StreamPlan,
        *,
        metrics: Metrics,
        clock: Callable[[], float],
        timeout_s: Callable[[], float | None],
        tracer: Tracer,
        answer: Callable[[TrackState, Held[Answered]], Awaitable[None]],
        end: Callable[[End], Awaitable[None]],
        launched: Callable[[], None],
    ) -> None:
        self._infer = infer
        self._plan = plan
        self._metrics = metrics
        self._clock = clock
        self._timeout_s = timeout_s
        self._tracer = tracer
        self._trace = tracer.current()  # the stream's span: the parent of its windows' spans
        self._answer = answer
        self._end = end
        self._launched = launched
        self._windows = 0  # windows run so far
        self.stopped = False
        self.workers: set[asyncio.Task[None]] = set()

    def start(self, track: TrackState) -> None:
        """Give ``track`` its worker unless it has one."""
        if track.worker is None:
            track.worker = asyncio.create_task(self._work(track), name=f"stream track {track.id}")
            self.workers.add(track.worker)
            track.worker.add_done_callback(self.workers.discard)

    def launch(self, track: TrackState) -> None:
        """Submit the track's waiting windows while fewer than ``IN_FLIGHT`` of its windows run."""
        while track.waiting and len(track.running) < IN_FLIGHT and not self.stopped:
            job = track.waiting.popleft()
            self._launched()
            track.running.append((job, asyncio.create_task(self._infer_job(track, job))))

    async def _work(self, track: TrackState) -> None:
        """Answer the track's running windows in order, submitting the next ones as each finishes."""
        try:
            while track.running and not self.stopped:
                job, task = track.running[0]
                ran = await task
                track.running.popleft()
                if isinstance(ran, LiftError):  # ended here, not in the task: the end must wait for queue room
                    await self._end(End(ran))
                    break
                self.launch(track)
                if ran is not None:
                    await self._answer_job(track, job, ran)
            if track.ending and not self.stopped:  # its last window ran: release what the smoother holds
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
        options, started = self._plan.options, self._clock()
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
                    if self._plan.policy == "latest":
                        self._metrics.stream_frames.labels("skipped").inc(len(job.answer))
                        track.carry_skips(job)
                        return None
                    await asyncio.sleep(RETRY_S)  # all: nothing is skipped; the sender waits in room() meanwhile
                except LiftError as exc:
                    return exc

    async def _answer_job(self, track: TrackState, job: Job, ran: Ran) -> None:
        """Answer the frames of ``job`` from the rows it ran (through the track's smoother)."""
        options, length, stamps, started = self._plan.options, len(job.window), ran.stamps, ran.started
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

    def _span(self) -> AbstractContextManager[Span]:
        """The next window's span: under the stream's span for its first ``TRACED_WINDOWS``, then none."""
        if not self._tracer.on:
            return NO_SPAN
        self._windows += 1
        return self._tracer.span("window", parent=self._trace if self._windows <= TRACED_WINDOWS else None)
