"""What flows through a stream: one track's keypoints in one video frame in (and their checks), one frame's 3D
joints out.

``FrameLatency``'s fields are those of the gRPC ``StreamLatency`` message, so both sides convert by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Final

from service.core import keypoints
from service.core.arrays import check_pose
from service.core.backend import Array
from service.core.options import LiftOptions
from service.errors import InvalidInput

# Frame indices are int64 on the wire; an unset index is the previous one + 1, which must still fit.
MAX_FRAME_INDEX: Final = 2**63 - 2


@dataclass(frozen=True)
class TrackFrame:
    """One track's keypoints ``[J, C]`` (as received: the core checks them) in one video frame; ``field`` names
    it in error messages (``frame.tracks[1]``)."""

    track_id: str
    keypoints: Array
    frame_index: int | None = None
    timestamp_s: float | None = None
    field: str = "keypoints"


@dataclass(frozen=True)
class FrameLatency:
    """Where one answered frame's time went (ms): ``total_ms`` from the frame's arrival to its answer, of which
    ``lookahead_ms`` waiting for the later frames its window needs, ``queue_ms`` its window waiting (behind the
    track's previous one and in the batcher), ``inference_ms`` the model, ``smoothing_ms`` held back by the
    stream's smoothing for the later answers it needs; ``batch_size`` the largest batch its window ran in."""

    total_ms: float
    lookahead_ms: float
    queue_ms: float
    inference_ms: float
    batch_size: int
    smoothing_ms: float = 0.0

    @classmethod
    def from_fields(cls, message: object) -> FrameLatency:
        """From anything with this class's attributes (the gRPC ``StreamLatency`` message)."""
        return cls(**{f.name: getattr(message, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class FrameAnswer:
    """The 3D joints ``[17, 3]`` of one frame of one track (and in pixels when the stream answers them)."""

    track_id: str
    frame_index: int
    timestamp_s: float | None
    joints3d: Array
    joints3d_px: Array | None
    lookahead: int  # later frames of the track its window held
    window_frames: int
    latency: FrameLatency
    skipped: int  # frames of this track between its previous answered frame and this one (never answered)
    skipped_total: int  # frames of this track before this one that were never answered


def check_frames(
    frames: Sequence[TrackFrame], options: LiftOptions, *, last_index: Mapping[str, int | None], max_tracks: int
) -> list[Array]:
    """Check one video frame's tracks and normalise their keypoints as a one-frame request would be (``[17, 3]``
    each, in order). ``last_index`` holds the stream's live tracks and their last frame index. Raises
    ``InvalidInput`` naming the track (``frame.tracks[1]...``): a track twice in the frame, more than
    ``max_tracks`` live tracks, a frame index that does not increase or leaves [0, ``MAX_FRAME_INDEX``], a
    timestamp that is not finite, or bad keypoints."""
    seen: set[str] = set()
    poses: list[Array] = []
    live = len(last_index)
    for frame in frames:
        if frame.track_id in seen:
            raise InvalidInput(f"track {frame.track_id!r} appears twice in one frame", field=frame.field)
        seen.add(frame.track_id)
        live += frame.track_id not in last_index
        if live > max_tracks:
            raise InvalidInput(f"more than {max_tracks} live tracks in one stream", field=frame.field)
        last = last_index.get(frame.track_id)
        if frame.frame_index is not None and not 0 <= frame.frame_index <= MAX_FRAME_INDEX:
            raise InvalidInput(
                f"frame_index must be between 0 and {MAX_FRAME_INDEX}, got {frame.frame_index}",
                field=f"{frame.field}.frame_index",
            )
        if frame.frame_index is None and last == MAX_FRAME_INDEX:
            raise InvalidInput(
                f"the next frame_index would pass {MAX_FRAME_INDEX}; start a new track", field=f"{frame.field}"
            )
        if frame.frame_index is not None and last is not None and frame.frame_index <= last:
            raise InvalidInput(
                f"frame_index must increase per track: {frame.frame_index} after {last}",
                field=f"{frame.field}.frame_index",
            )
        if frame.timestamp_s is not None and not math.isfinite(frame.timestamp_s):
            raise InvalidInput("timestamp_s must be finite", field=f"{frame.field}.timestamp_s")
        where = f"{frame.field}.keypoints"
        raw = check_pose(frame.keypoints, format=options.format, field=where)
        poses.append(keypoints.normalise(raw[None], options, field=where)[0])
    return poses
