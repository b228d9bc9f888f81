"""Validation of what a caller sends, shared by every front end: arrays, layouts and options.

Every failure is an ``InvalidInput`` naming the field (``keypoints``, ``tracks[2].keypoints[40][3]``,
``image_size``...) and the problem, so REST answers 422 and gRPC INVALID_ARGUMENT with the same text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from service.core.backend import Array
from service.core.keypoints import LAYOUTS
from service.errors import InvalidInput

Normalization = Literal["pixel", "crop", "none"]
NORMALIZATIONS: tuple[str, ...] = ("pixel", "crop", "none")


@dataclass(frozen=True)
class LiftOptions:
    """How to read the keypoints and what to answer.

    - ``layout``: ``h36m``, ``coco`` or ``halpe26`` (converted to H36M-17 as the official demo does).
    - ``image_size``: ``(width, height)`` in pixels, when known.
    - ``normalization``: ``pixel`` (needs ``image_size``; the default when it is given), ``crop`` (from
      the sequence's bounding box; the default otherwise) or ``none`` (already normalised).
    - ``flip``: flip test-time augmentation (on by default, as in the official configs).
    - ``rootrel``: root-centred output (pelvis at the origin in every frame).
    - ``pixels``: also answer in pixels (needs pixel normalisation); default: whenever it is possible.
    - ``overlap``: frames shared by consecutive windows; ``None`` = the server's default, 0 = official clips.
    """

    layout: str
    image_size: tuple[float, float] | None = None
    normalization: Normalization | None = None
    flip: bool = True
    rootrel: bool = False
    pixels: bool | None = None
    overlap: int | None = None

    def resolved_normalization(self) -> Normalization:
        """The normalisation in effect once defaults are applied."""
        if self.normalization is not None:
            return self.normalization
        return "pixel" if self.image_size is not None else "crop"

    def resolved_pixels(self) -> bool:
        """Whether the answer carries pixel coordinates."""
        if self.pixels is not None:
            return self.pixels
        return self.resolved_normalization() == "pixel"


def check_options(options: LiftOptions, *, window: int) -> None:
    """Raise ``InvalidInput`` for an unknown layout or inconsistent options."""
    if options.layout not in LAYOUTS:
        raise InvalidInput(
            f"unknown format {options.layout!r}; expected one of {', '.join(sorted(LAYOUTS))}", field="format"
        )
    if options.image_size is not None:
        width, height = options.image_size
        if not all(math.isfinite(v) and v > 0 for v in (width, height)):
            raise InvalidInput(
                f"image_size must be two finite positive numbers [width, height], got {[width, height]}",
                field="image_size",
            )
    if options.normalization is not None and options.normalization not in NORMALIZATIONS:
        raise InvalidInput(
            f"unknown normalization {options.normalization!r}; expected one of {', '.join(NORMALIZATIONS)}",
            field="normalization",
        )
    mode = options.resolved_normalization()
    if mode == "pixel" and options.image_size is None:
        raise InvalidInput("pixel normalization needs image_size [width, height]", field="image_size")
    if options.pixels and (options.image_size is None or mode != "pixel"):
        raise InvalidInput(
            "pixel output needs image_size and pixel normalization (the official --pixel mode)",
            field="pixels",
        )
    if options.overlap is not None and not 0 <= options.overlap < window:
        raise InvalidInput(
            f"overlap must be between 0 and {window - 1} frames (window {window}), got {options.overlap}",
            field="overlap",
        )


def as_keypoints(value: Any, *, layout: str, field: str, max_frames: int) -> Array:
    """Turn nested lists (JSON) or an array into ``float32 [T, J, C]``, checking everything.

    ``J`` must be the layout's joint count, ``C`` 2 (x, y) or 3 (x, y, score); values finite; scores in
    [0, 1]; ``1 <= T <= max_frames``. Raises ``InvalidInput`` naming the first offending element.
    """
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError):
        raise _ragged(value, field) from None
    if array.ndim == 2 and array.shape[0] > 0 and array.shape[1] == 0:
        array = array.reshape(array.shape[0], 0, 2)  # frames without joints: reported as a joint count below
    if array.ndim != 3 or array.shape[0] == 0:
        if array.size == 0 and array.ndim <= 1:
            raise InvalidInput("the sequence is empty; send at least one frame", field=field)
        raise (
            _ragged(value, field)
            if array.ndim < 3
            else InvalidInput(
                f"expected frames x joints x (2 or 3) numbers, got an array of shape {list(array.shape)}",
                field=field,
            )
        )
    frames, joints, channels = array.shape
    if frames > max_frames:
        raise InvalidInput(f"{frames} frames is more than the limit of {max_frames}", field=field)
    expected = LAYOUTS[layout]
    if joints != expected:
        raise InvalidInput(f"format {layout!r} has {expected} joints per frame, got {joints}", field=f"{field}[0]")
    if channels not in (2, 3):
        raise InvalidInput(
            f"each joint needs 2 (x, y) or 3 (x, y, score) numbers, got {channels}", field=f"{field}[0][0]"
        )
    finite = np.isfinite(array)
    if not finite.all():
        t, j, _ = np.argwhere(~finite)[0]
        raise InvalidInput("a value is NaN or infinite", field=f"{field}[{t}][{j}]")
    if channels == 3:
        scores = array[..., 2]
        bad = (scores < 0) | (scores > 1)
        if bad.any():
            t, j = np.argwhere(bad)[0]
            raise InvalidInput(f"score {float(scores[t, j]):.6g} is outside [0, 1]", field=f"{field}[{t}][{j}][2]")
    return array


def _ragged(value: Any, field: str) -> InvalidInput:
    """Find where nested lists stop being frames x joints x (2 or 3) numbers, to name that element."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return InvalidInput("expected a list of frames", field=field)
    if len(value) == 0:
        return InvalidInput("the sequence is empty; send at least one frame", field=field)
    joints = None
    for t, frame in enumerate(value):
        if not isinstance(frame, Sequence) or isinstance(frame, str | bytes):
            return InvalidInput("expected a list of joints", field=f"{field}[{t}]")
        if joints is None:
            joints = len(frame)
        elif len(frame) != joints:
            return InvalidInput(
                f"frame has {len(frame)} joints but frame 0 has {joints}; every frame needs the same count",
                field=f"{field}[{t}]",
            )
        for j, joint in enumerate(frame):
            if not isinstance(joint, Sequence) or isinstance(joint, str | bytes):
                return InvalidInput("expected [x, y] or [x, y, score]", field=f"{field}[{t}][{j}]")
            if len(joint) not in (2, 3) or len(joint) != len(value[0][0]):
                return InvalidInput(
                    f"expected [x, y] or [x, y, score] (the same in every joint), got {len(joint)} numbers",
                    field=f"{field}[{t}][{j}]",
                )
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in joint):
                return InvalidInput("coordinates must be numbers", field=f"{field}[{t}][{j}]")
    return InvalidInput("expected frames x joints x (2 or 3) numbers", field=field)
