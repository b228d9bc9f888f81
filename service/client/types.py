"""What the client sends and gets back, independent of the transport (REST or gRPC).

Arrays are ``float32``, as the service computes them: gRPC packs float32; REST's JSON numbers are read back
into float32. Joints are in H36M-17 order (``joint_names``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from service.core.options import Normalization as Normalization  # re-exported for the client API
from service.core.results import Timing
from service.errors import InvalidInput

Array = npt.NDArray[np.float32]
ServerLatency = Timing  # where the service spent a request's time (ms), as it reports it
Mode = Literal["causal", "lookahead"]


@dataclass(frozen=True)
class TrackResult:
    """One track's 3D joints ``[T, 17, 3]`` (normalised units) and, when answered, in pixels."""

    id: str
    joints3d: Array
    joints3d_px: Array | None = None


@dataclass(frozen=True)
class LiftAnswer:
    """A lift's answer: ``tracks`` in request order, the service's latency and the client's round trip."""

    request_id: str
    tracks: tuple[TrackResult, ...]
    joint_names: tuple[str, ...]
    coordinates: dict[str, str]
    latency: ServerLatency
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
    """A lift request, transport-neutral. ``single``: one unnamed sequence (REST ``keypoints``)."""

    tracks: tuple[tuple[str | None, Array], ...]
    single: bool
    format: str
    image_size: tuple[float, float] | None = None
    normalization: Normalization | None = None
    flip: bool = True
    rootrel: bool = False
    pixels: bool | None = None
    overlap: int | None = None


def as_array(value: Any, *, ndim: int, field: str) -> Array:
    """``value`` as float32 with ``ndim`` dimensions; ``InvalidInput`` naming ``field`` otherwise.

    Only the shape is checked here (the packed gRPC wire needs it); every check on values is the service's.
    """
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError):
        raise InvalidInput(f"expected {ndim} nested levels of numbers of equal lengths", field=field) from None
    if array.ndim != ndim:
        shape = "frames x joints x (2 or 3)" if ndim == 3 else "joints x (2 or 3)"
        raise InvalidInput(f"expected {shape} numbers, got an array of shape {list(array.shape)}", field=field)
    return array


def lift_call(
    keypoints: Any = None, tracks: Mapping[str, Any] | Sequence[Any] | None = None, **options: Any
) -> LiftCall:
    """Build a ``LiftCall`` from exactly one of ``keypoints`` (one sequence ``[T, J, C]``) or ``tracks``
    (``{id: [T, J, C]}``, or a list whose ids are its indices); ``InvalidInput`` otherwise."""
    if (keypoints is None) == (tracks is None):
        raise InvalidInput("give exactly one of keypoints (one sequence) or tracks (several)", field="keypoints")
    if keypoints is not None:
        return LiftCall(((None, as_array(keypoints, ndim=3, field="keypoints")),), single=True, **options)
    assert tracks is not None
    items = tracks.items() if isinstance(tracks, Mapping) else ((None, t) for t in tracks)
    arrays = tuple(
        (None if tid is None else str(tid), as_array(kp, ndim=3, field=f"tracks[{i}].keypoints"))
        for i, (tid, kp) in enumerate(items)
    )
    return LiftCall(arrays, single=False, **options)


@dataclass(frozen=True)
class StreamLatency:
    """Where one frame's time went (ms), as the service reports it (``total_ms``: arrival to answer)."""

    total_ms: float
    lookahead_ms: float
    queue_ms: float
    inference_ms: float
    batch_size: int


@dataclass(frozen=True)
class StreamStarted:
    """The configuration a stream runs with (defaults resolved by the service)."""

    window: int
    hop: int
    mode: Mode
    lookahead: int
    track_expiry_s: float
    joint_names: tuple[str, ...]
    coordinates: dict[str, str]
    model: dict[str, Any]


@dataclass(frozen=True)
class FrameResult:
    """The 3D joints ``[17, 3]`` of one frame of one track of a stream."""

    track_id: str
    frame_index: int
    timestamp_s: float | None
    joints3d: Array
    joints3d_px: Array | None
    lookahead: int
    window_frames: int
    latency: StreamLatency
    skipped: int  # frames of this track just before this one that will never be answered
    skipped_total: int
    received_at: float = field(default=0.0, compare=False)  # time.perf_counter() when the client got it
