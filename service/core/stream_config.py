"""What a stream takes and gives: its config (checked and defaulted into a ``StreamPlan``), frames, answers.

The checks are the core's: ``check_options`` for what a stream shares with ``Lifter.lift`` (layout, image
size, normalisation, pixel output), plus the stream's own. Errors are ``InvalidInput`` naming the field as
the gRPC API spells it (``config.window``, ``config.image_size``...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from service.core import keypoints
from service.core.backend import Array
from service.core.options import LiftOptions, Normalization, as_keypoints, check_options
from service.errors import InvalidInput

Mode = Literal["causal", "lookahead"]
DEFAULT_EXPIRY_S = 10.0


@dataclass(frozen=True)
class StreamConfig:
    """A stream's request. ``None`` / 0 mean the default: the model's window, hop 1, 10 s expiry.

    ``normalization`` must resolve to ``pixel`` (needs ``image_size``; the default when it is given) or
    ``none``: crop normalisation uses the whole sequence's box, which a stream never has.
    """

    layout: str
    image_size: tuple[float, float] | None = None
    normalization: Normalization | None = None
    window: int | None = None
    hop: int | None = None
    mode: Mode = "causal"
    lookahead: int = 0
    flip: bool = True
    rootrel: bool = False
    pixels: bool | None = None
    expiry_s: float | None = None


@dataclass(frozen=True)
class StreamPlan:
    """A checked stream configuration with every default resolved; ``lookahead`` is 0 in causal mode."""

    options: LiftOptions
    window: int
    hop: int
    mode: Mode
    lookahead: int
    expiry_s: float


def resolve(config: StreamConfig, *, model_window: int) -> StreamPlan:
    """Check ``config`` against the model's window; raises ``InvalidInput`` naming ``config.<field>``."""
    options = LiftOptions(
        layout=config.layout,
        image_size=config.image_size,
        normalization=config.normalization,
        flip=config.flip,
        rootrel=config.rootrel,
        pixels=config.pixels,
    )
    try:
        check_options(options, window=model_window)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=f"config.{exc.field}") from None
    if options.resolved_normalization() == "crop":
        raise InvalidInput(
            "a stream needs image_size (pixel normalization) or normalization none: crop normalization "
            "scales by the box around the whole sequence, which is not known until the stream ends",
            field="config.image_size" if config.normalization is None else "config.normalization",
        )
    window = config.window or model_window
    if not 1 <= window <= model_window:
        raise InvalidInput(f"window must be between 1 and the model's {model_window} frames", field="config.window")
    hop = config.hop or 1
    if config.mode == "causal":
        if config.lookahead:
            raise InvalidInput("causal mode has no look-ahead; use lookahead mode", field="config.lookahead")
        if hop != 1:
            raise InvalidInput(
                "causal mode answers each frame from the window ending at it, so hop must be 1 "
                "(lookahead mode shares one window between hop frames)",
                field="config.hop",
            )
    elif config.mode == "lookahead":
        if not 1 <= config.lookahead < window:
            raise InvalidInput(
                f"lookahead must be between 1 and {window - 1} frames (window {window})", field="config.lookahead"
            )
        if hop > window - config.lookahead:
            raise InvalidInput(
                f"hop must be at most window - lookahead = {window - config.lookahead}: the frames a window "
                "answers must be in it",
                field="config.hop",
            )
    else:
        raise InvalidInput(f"unknown mode {config.mode!r}; expected causal or lookahead", field="config.mode")
    expiry = DEFAULT_EXPIRY_S if config.expiry_s is None else config.expiry_s
    if not (math.isfinite(expiry) and expiry > 0):
        raise InvalidInput("track_expiry_s must be a positive number of seconds", field="config.track_expiry_s")
    return StreamPlan(options, window, hop, config.mode, config.lookahead, expiry)


@dataclass(frozen=True)
class TrackFrame:
    """One track's keypoints ``[J, C]`` in one video frame; ``field`` names it in error messages."""

    track_id: str
    keypoints: Any
    frame_index: int | None = None
    timestamp_s: float | None = None
    field: str = "keypoints"


@dataclass(frozen=True)
class FrameAnswer:
    """The 3D joints ``[17, 3]`` of one frame of one track, and how long they took (ms)."""

    track_id: str
    frame_index: int
    timestamp_s: float | None
    joints3d: Array
    joints3d_px: Array | None
    lookahead: int  # later frames of the track its window held
    window_frames: int
    total_ms: float  # arrival of the frame -> answer ready
    lookahead_ms: float  # arrival of the frame -> its window due (waiting for later frames)
    queue_ms: float  # window waiting behind the track's previous one and in the batcher's queue
    inference_ms: float
    batch_size: int
    skipped: int  # frames of this track between its previous answered frame and this one (never answered)
    skipped_total: int  # frames of this track before this one that were never answered


def normalise_frame(frame: TrackFrame, plan: StreamPlan) -> Array:
    """Check one frame's keypoints with the core's checks; its normalised H36M pose ``[17, 3]``.

    Raises ``InvalidInput`` naming the joint (``frame.tracks[1].keypoints[3]``).
    """
    where = f"{frame.field}.keypoints"
    options = plan.options
    try:
        raw = as_keypoints([frame.keypoints], layout=options.layout, field=where, max_frames=1)
    except InvalidInput as exc:  # name the joint, not "frame 0" of a one-frame sequence
        named = exc.field or where
        raise InvalidInput(exc.message, field=where + named[len(where) + 3 :]) from None
    x = keypoints.to_h36m(raw, options.layout)
    if options.resolved_normalization() == "pixel":
        assert options.image_size is not None  # resolve() guarantees it
        x = keypoints.normalise_pixel(x, *options.image_size)
    pose: Array = x[0]
    return pose
