"""What the client sends and gets back, independent of the transport (REST or gRPC).

The options, the per-track result, the latency breakdown and a stream frame's answer are the service's own
types (``service.core.options``, ``results``, ``frames``: the contract both sides share), so there is one
definition of each. Arrays are ``float32``, as the service computes them: gRPC packs float32; REST's JSON
numbers are read back into float32. Joints are in H36M-17 order (``joint_names``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from service.core.arrays import as_array
from service.core.backend import Array
from service.core.frames import FrameAnswer
from service.core.options import LiftOptions
from service.core.results import Timing, TrackResult
from service.errors import InvalidInput

__all__ = ["FrameResult", "LiftAnswer", "LiftCall", "StreamStarted", "Timing", "TrackResult", "lift_call"]


@dataclass(frozen=True)
class LiftAnswer:
    """A lift's answer: ``tracks`` in request order, the service's latency and the client's round trip."""

    request_id: str
    tracks: tuple[TrackResult, ...]
    joint_names: tuple[str, ...]
    coordinates: dict[str, str]
    latency: Timing
    model: dict[str, Any]
    round_trip_ms: float
    transport: Literal["rest", "grpc"]

    @property
    def joints3d(self) -> Array:
        """The joints of the only track; ``ValueError`` when there are several (use ``tracks``)."""
        if len(self.tracks) != 1:
            raise ValueError(f"the answer has {len(self.tracks)} tracks; read answer.tracks")
        return self.tracks[0].joints3d


@dataclass(frozen=True)
class LiftCall:
    """A lift request, transport-neutral. ``single``: one unnamed sequence (REST ``keypoints``); ``starts``: each
    track's first video frame (empty: all 0)."""

    tracks: tuple[tuple[str | None, Array], ...]
    single: bool
    options: LiftOptions
    starts: tuple[int, ...] = ()

    def entries(self) -> list[tuple[str | None, Array, int]]:
        """``(id, keypoints, start)`` per track."""
        starts = self.starts or (0,) * len(self.tracks)
        return [(tid, kp, start) for (tid, kp), start in zip(self.tracks, starts, strict=True)]


def lift_call(
    keypoints: Any = None, tracks: Mapping[str, Any] | Sequence[Any] | None = None, *, options: LiftOptions
) -> LiftCall:
    """Build a ``LiftCall`` from exactly one of ``keypoints`` (one sequence ``[T, J, C]``) or ``tracks``
    (``{id: [T, J, C]}``, or a list whose ids are its indices; a value may also be ``{"keypoints": [T, J, C],
    "start": first_video_frame}``, as in ``POST /lift``); ``InvalidInput`` otherwise. Only the shape is checked
    here (the packed gRPC wire needs it); the service checks the values."""
    if (keypoints is None) == (tracks is None):
        raise InvalidInput("send exactly one of keypoints (one sequence) or tracks (several)", field="body")
    if keypoints is not None:
        if options.selects():
            raise InvalidInput("the track policy chooses among tracks: send tracks, not keypoints", field="tracks")
        return LiftCall(((None, as_array(keypoints, ndim=3, field="keypoints")),), True, options)
    assert tracks is not None
    items = tracks.items() if isinstance(tracks, Mapping) else ((None, t) for t in tracks)
    arrays, starts = [], []
    for i, (tid, value) in enumerate(items):
        kp, start = (value.get("keypoints"), value.get("start", 0)) if isinstance(value, Mapping) else (value, 0)
        if isinstance(start, bool) or not isinstance(start, int):
            raise InvalidInput(f"must be an integer, got {start!r:.40}", field=f"tracks[{i}].start")
        arrays.append((None if tid is None else str(tid), as_array(kp, ndim=3, field=f"tracks[{i}].keypoints")))
        starts.append(start)
    return LiftCall(tuple(arrays), False, options, tuple(starts) if any(starts) else ())


@dataclass(frozen=True)
class StreamStarted:
    """The configuration a stream runs with (defaults resolved by the service)."""

    window: int
    hop: int
    mode: str
    lookahead: int
    track_expiry_s: float
    policy: str
    joint_names: tuple[str, ...]
    coordinates: dict[str, str]
    model: dict[str, Any]
    smoothing: str = "none"
    smoothing_latency_frames: int = 0  # later answers of a track each answer waits for (savgol)


@dataclass(frozen=True)
class FrameResult(FrameAnswer):
    """The service's answer for one frame of one track of a stream (``FrameAnswer``), and when it arrived."""

    received_at: float = field(default=0.0, compare=False)  # time.perf_counter() when the client got it
