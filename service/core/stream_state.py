"""The state a stream session keeps (``service.core.streams``): per track, its ring of frames, its due windows
and its smoother; per window, the frames it answers; per answered frame, what its ``FrameAnswer`` says, and
the ``FrameAnswer`` made from it."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from service.core import keypoints
from service.core.backend import Array
from service.core.frames import FrameAnswer, FrameLatency
from service.core.options import LiftOptions
from service.core.results import Stamps
from service.core.smoother import Held, Smoother
from service.errors import LiftError


@dataclass(frozen=True)
class Frame:
    number: int  # the track's own count: 0, 1, 2, ...
    index: int
    timestamp_s: float | None
    arrival: float


@dataclass
class Job:
    window: Array  # [L, 17, 3], a copy of the ring when it became due
    first: int  # frame number of the window's first row
    answer: list[Frame]  # the frames it answers
    due: float
    skipped: int = 0  # frames just before its first that will never be answered


@dataclass(frozen=True)
class Ran:
    """A window's model output: its computed last rows ``[n, 17, 3]`` (flip test averaged), the batch's stamps,
    and when it started."""

    rows: Array
    stamps: Stamps
    started: float


@dataclass(frozen=True)
class Answered:
    """A frame's answer before smoothing: what its ``FrameAnswer`` says besides the joints."""

    frame: Frame
    lookahead: int
    window_frames: int
    lookahead_ms: float
    queue_ms: float
    inference_ms: float
    batch_size: int
    skipped: int
    skipped_total: int
    ready: float  # when the model's answer was there (the smoother may hold it back)


@dataclass
class TrackState:
    id: str
    ring: deque[Array]
    frames: deque[Frame]
    smoother: Smoother[Answered]
    count: int = 0  # frames received
    scheduled: int = 0  # frames before this one are answered, being answered, or skipped
    last_index: int | None = None
    last_seen: float = 0.0
    waiting: deque[Job] = field(default_factory=deque)  # due windows, oldest first (latest: at most one)
    # submitted windows, oldest first, with the task that runs each (stream_runner.IN_FLIGHT at most)
    running: deque[tuple[Job, asyncio.Task[Ran | LiftError | None]]] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None  # answers the running windows in order
    unreported: int = 0  # skipped frames that the next window to be scheduled reports
    skipped_total: int = 0  # skipped frames reported so far
    ending: bool = False  # retired: after its last window, the smoother releases what it holds

    def carry_skips(self, job: Job) -> None:
        """``job`` will not run: its frames (and the skips it was to report) pass to the track's next window."""
        carried = job.skipped + len(job.answer)
        later = [j for j, _ in self.running]
        later = later[later.index(job) + 1 :] if job in later else []
        if later:  # the next window to answer reports them
            later[0].skipped += carried
        elif self.waiting:
            self.waiting[0].skipped += carried
        else:
            self.unreported += carried


@dataclass(frozen=True)
class End:
    error: LiftError | None = None


def frame_answer(track_id: str, held: Held[Answered], options: LiftOptions, now: float) -> FrameAnswer:
    """The ``FrameAnswer`` of one frame the smoother gave back at ``now``, in pixels too when the stream answers
    them; its latency stamps count from the frame's arrival."""
    a = held.payload
    pixels = None
    if options.resolved_pixels() and options.image_size is not None:
        pixels = keypoints.denormalise_pixel(held.joints, *options.image_size)
    return FrameAnswer(
        track_id=track_id,
        frame_index=a.frame.index,
        timestamp_s=a.frame.timestamp_s,
        joints3d=held.joints,
        joints3d_px=pixels,
        lookahead=a.lookahead,
        window_frames=a.window_frames,
        latency=FrameLatency(
            total_ms=1000 * (now - a.frame.arrival),
            lookahead_ms=a.lookahead_ms,
            queue_ms=a.queue_ms,
            inference_ms=a.inference_ms,
            batch_size=a.batch_size,
            smoothing_ms=1000 * (now - a.ready),
        ),
        skipped=a.skipped,
        skipped_total=a.skipped_total,
    )
