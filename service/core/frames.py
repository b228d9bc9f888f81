"""What flows through a stream: one track's keypoints in one video frame in, one frame's 3D joints out.

``FrameLatency``'s fields are those of the gRPC ``StreamLatency`` message, so both sides convert by name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from service.core.backend import Array


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
    track's previous one and in the batcher), ``inference_ms`` the model; ``batch_size`` the largest batch its
    window ran in."""

    total_ms: float
    lookahead_ms: float
    queue_ms: float
    inference_ms: float
    batch_size: int

    @classmethod
    def from_fields(cls, message: Any) -> FrameLatency:
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
