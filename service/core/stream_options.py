"""What a stream's caller asks for: ``StreamOptions`` (the wire form) and ``StreamPlan`` (checked, defaults
resolved), each rule and message written once, as ``service.core.options`` does for a request (whose
``LiftOptions`` a stream's options hold). ``service.core.streams`` runs the plan."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

from service.core.options import DEFAULT_SMOOTHING_WINDOW, SELECTION_FIELDS, LiftOptions, parse_mode, parse_policy
from service.core.values import typed
from service.errors import InvalidInput

DEFAULT_EXPIRY_S: Final = 10.0
# Whole-sequence settings a stream does not take: the track policy needs the whole track, metric scale its
# bone lengths over the sequence. (Smoothing it takes: service/core/smoother.py.)
SEQUENCE_FIELDS: Final = (*SELECTION_FIELDS, "subject_height_m", "root", "focal_length_px")


NO_STREAM_SELECTION: Final = (
    "a stream answers every track it is sent, frame by frame; the track policy (min_track_frames, max_gap_frames, "
    "person), metric scale (subject_height_m) and the root trajectory (root, focal_length_px; a stream takes "
    "rootrel) are for whole sequences"
)


@dataclass(frozen=True)
class StreamOptions:
    """A stream's configuration: how its frames are read (``lift``, without ``overlap``) and how windows are cut
    and answered (see ``service.core.streams``). ``None`` / 0 in ``window``, ``hop`` and ``track_expiry_s``
    mean the default; ``resolve`` checks everything and gives the plan in effect."""

    lift: LiftOptions
    window: int | None = None
    hop: int | None = None
    mode: str = "causal"
    lookahead: int = 0
    track_expiry_s: float | None = None
    policy: str = "latest"

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, prefix: str = "config.") -> StreamOptions:
        """As ``LiftOptions.from_mapping``, for the flat form of a stream's configuration (its wire form)."""
        lift = {k: v for k, v in data.items() if k not in STREAM_FIELDS}
        if "overlap" in lift:
            raise InvalidInput(
                "a stream has no overlap: each frame is answered from one window", field=prefix + "overlap"
            )
        for name in SEQUENCE_FIELDS:
            if name in lift:
                raise InvalidInput(NO_STREAM_SELECTION, field=prefix + name)
        own = typed({k: v for k, v in data.items() if k in STREAM_FIELDS}, STREAM_FIELDS, prefix)
        if "mode" in own:
            own["mode"] = parse_mode(own["mode"], field=prefix + "mode")
        if "policy" in own:
            own["policy"] = parse_policy(own["policy"], field=prefix + "policy")
        return cls(LiftOptions.from_mapping(lift, prefix=prefix), **own)  # type: ignore[arg-type]  # checked

    def resolve(self, *, model_window: int, prefix: str = "config.") -> StreamPlan:
        """Check every rule against the model's window and fill in the defaults; ``InvalidInput`` naming
        ``prefix + field``."""
        lift = self.lift
        if lift.overlap is not None:
            raise InvalidInput(
                "a stream has no overlap: each frame is answered from one window", field=prefix + "overlap"
            )
        given = next((n for n in SEQUENCE_FIELDS if getattr(lift, n) is not None), None)
        if given is not None:
            raise InvalidInput(NO_STREAM_SELECTION, field=prefix + given)
        lift.check(window=model_window, prefix=prefix)
        if lift.resolved_normalization() == "crop":
            raise InvalidInput(
                "a stream needs image_size (pixel normalization) or normalization none: crop normalization "
                "scales by the box around the whole sequence, which is not known until the stream ends",
                field=prefix + ("image_size" if lift.normalization is None else "normalization"),
            )
        window = self.window or model_window
        if not 1 <= window <= model_window:
            raise InvalidInput(
                f"window must be between 1 and the model's {model_window} frames", field=prefix + "window"
            )
        hop = self.hop or 1
        mode = parse_mode(self.mode, field=prefix + "mode")
        if mode == "causal":
            _check_causal(self.lookahead, hop, prefix)
        else:
            _check_lookahead(self.lookahead, hop, window, prefix)
        expiry = DEFAULT_EXPIRY_S if self.track_expiry_s is None else self.track_expiry_s
        if not (math.isfinite(expiry) and expiry > 0):
            raise InvalidInput("track_expiry_s must be a positive number of seconds", field=prefix + "track_expiry_s")
        policy = parse_policy(self.policy, field=prefix + "policy")
        return StreamPlan(lift, window, hop, mode, self.lookahead if mode == "lookahead" else 0, expiry, policy)


@dataclass(frozen=True)
class StreamPlan:
    """A checked stream configuration with every default resolved; ``lookahead`` is 0 in causal mode."""

    options: LiftOptions
    window: int
    hop: int
    mode: str
    lookahead: int
    expiry_s: float
    policy: str = "latest"

    @property
    def smoothing_latency_frames(self) -> int:
        """Later answers of a track each answer waits for: ``smoothing_window // 2`` for savgol, else 0."""
        if self.options.smoothing == "savgol":
            return (self.options.smoothing_window or DEFAULT_SMOOTHING_WINDOW) // 2
        return 0


def _check_causal(lookahead: int, hop: int, prefix: str) -> None:
    if lookahead:
        raise InvalidInput("causal mode has no look-ahead; use lookahead mode", field=prefix + "lookahead")
    if hop != 1:
        raise InvalidInput(
            "causal mode answers each frame from the window ending at it, so hop must be 1 "
            "(lookahead mode shares one window between hop frames)",
            field=prefix + "hop",
        )


def _check_lookahead(lookahead: int, hop: int, window: int, prefix: str) -> None:
    if not 1 <= lookahead < window:
        raise InvalidInput(
            f"lookahead must be between 1 and {window - 1} frames (window {window})", field=prefix + "lookahead"
        )
    if hop > window - lookahead:
        raise InvalidInput(
            f"hop must be at most window - lookahead = {window - lookahead}: the frames a window answers must be in it",
            field=prefix + "hop",
        )


STREAM_FIELDS: Final[dict[str, str]] = {
    "window": "int",
    "hop": "int",
    "mode": "str",
    "lookahead": "int",
    "track_expiry_s": "number",
    "policy": "str",
}
assert set(STREAM_FIELDS) == {f.name for f in fields(StreamOptions)} - {"lift"}
