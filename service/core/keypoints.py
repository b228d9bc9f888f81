"""2D keypoint preprocessing of MotionBERT in the wild: layouts, normalisation, flip, pixel output.

Every convention here reproduces the official MotionBERT code (Walter0807/MotionBERT), which the
golden arrays in ``tests/fixtures/golden_tiny.npz`` were made with:

- ``lib/data/dataset_wild.py``: ``halpe2h36m`` and ``read_input`` (pixel mode when ``vid_size`` is set,
  crop mode through ``crop_scale`` otherwise);
- ``lib/data/dataset_action.py``: ``coco2h36m``;
- ``lib/utils/utils_data.py``: ``crop_scale`` and ``flip_data``;
- ``infer_wild.py``: the ``--pixel`` output scaling.

All functions are pure: they never modify their argument and always return a new array. Arithmetic
runs in float64 (as the official numpy code does) and results are float32, the model's input dtype
(the official ``read_input`` ends with ``.astype(np.float32)``); ``flip`` keeps its input's dtype.
Shapes and values are checked before they get here (``service.core.arrays``); the documented ``ValueError``s
(and ``normalise``'s ``InvalidInput``) are the only errors raised on purpose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt

from service.core.options import FORMATS, LiftOptions
from service.errors import InvalidInput

__all__ = [
    "CROP_MIN_VALID_JOINTS",
    "FLIP_PERM",
    "JOINT_NAMES",
    "denormalise_pixel",
    "flip",
    "normalise",
    "normalise_crop",
    "normalise_pixel",
    "to_h36m",
]

F32Array = npt.NDArray[np.float32]
_F64Array = npt.NDArray[np.float64]
Floats = F32Array | _F64Array  # what the functions take: the service's float32, training's float64
_N = TypeVar("_N", np.float32, np.float64)

# H36M-17 order used by MotionBERT (docstring of coco2h36m in lib/data/dataset_action.py).
JOINT_NAMES: Final[tuple[str, ...]] = (
    "pelvis",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_hip",
    "l_knee",
    "l_ankle",
    "spine",
    "thorax",
    "nose",
    "head",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
)

# Horizontal flip: left joints [4, 5, 6, 11, 12, 13] trade places with right joints [1, 2, 3, 14, 15, 16]
# (flip_data in lib/utils/utils_data.py). FLIP_PERM[i] is the joint whose value lands on joint i; it is
# its own inverse.
FLIP_PERM: Final[tuple[int, ...]] = (0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13)
_FLIP_INDEX: Final = np.array(FLIP_PERM, dtype=np.intp)

# crop_scale (lib/utils/utils_data.py) gives up, returning all zeros, below this many joints
# (counted over the whole sequence) with a non-zero score.
CROP_MIN_VALID_JOINTS: Final = 4


@dataclass(frozen=True)
class _Mapping:
    """How one layout becomes H36M-17.

    ``gather[i]`` is the source joint copied to H36M joint i (a placeholder where i is averaged).
    ``input_means`` are (target, a, b): target = (source a + source b) * 0.5, all channels.
    ``output_means`` are the same but over H36M joints already built (COCO's spine).
    """

    gather: tuple[int, ...]
    input_means: tuple[tuple[int, int, int], ...] = ()
    output_means: tuple[tuple[int, int, int], ...] = ()


_MAPPINGS: Final[dict[str, _Mapping]] = {
    "h36m": _Mapping(gather=tuple(range(17))),
    # halpe2h36m (lib/data/dataset_wild.py): root = Hip (19), thorax = Neck (18), head = Head (17),
    # spine = mean(Neck, Hip); limbs from the COCO-compatible first 17 joints. Feet (20-25) are unused.
    "halpe26": _Mapping(
        gather=(19, 12, 14, 16, 11, 13, 15, 19, 18, 0, 17, 5, 7, 9, 6, 8, 10),
        input_means=((7, 18, 19),),
    ),
    # coco2h36m (lib/data/dataset_action.py): root = mean(hips), thorax = mean(shoulders),
    # head = mean(eyes), then spine = mean(root, thorax) computed from those two, in that order.
    "coco": _Mapping(
        gather=(11, 12, 14, 16, 11, 13, 15, 11, 5, 0, 1, 5, 7, 9, 6, 8, 10),
        input_means=((0, 11, 12), (8, 5, 6), (10, 1, 2)),
        output_means=((7, 0, 8),),
    ),
}
assert set(_MAPPINGS) == set(FORMATS)


def to_h36m(kpts: Floats, layout: str) -> F32Array:
    """Convert keypoints of format ``layout`` to H36M-17 (order of ``JOINT_NAMES``).

    ``kpts``: ``[T, J, C]`` (any leading dims work) with J = ``FORMATS[layout]`` and C = 2 (x, y) or
    3 (x, y, score). With C = 2 every score is 1.0. An averaged joint averages all three channels, the
    score included, exactly as the official converters do; so a missing joint (x = y = score = 0)
    pulls an average towards 0, as in the official code.

    Returns a new float32 array ``[..., 17, 3]``. The input is assumed validated (shape, finiteness).

    Raises:
        ValueError: ``layout`` is not a key of ``FORMATS``.
    """
    mapping = _MAPPINGS.get(layout)
    if mapping is None:
        raise ValueError(f"unknown keypoint format {layout!r}; expected one of {sorted(FORMATS)}")
    x: _F64Array = np.asarray(kpts, dtype=np.float64)
    if x.shape[-1] == 2:
        x = np.concatenate([x, np.ones((*x.shape[:-1], 1), dtype=np.float64)], axis=-1)
    out = x[..., list(mapping.gather), :]  # advanced indexing: a copy
    for target, a, b in mapping.input_means:
        out[..., target, :] = (x[..., a, :] + x[..., b, :]) * 0.5
    for target, a, b in mapping.output_means:
        out[..., target, :] = (out[..., a, :] + out[..., b, :]) * 0.5
    return out.astype(np.float32)


def _check_size(width: float, height: float) -> float:
    """Return ``min(width, height) / 2``; ValueError unless both are finite and positive."""
    if not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
        raise ValueError(f"image size must be finite and positive, got width={width}, height={height}")
    return min(width, height) / 2.0


def normalise_pixel(x: Floats, width: float, height: float) -> F32Array:
    """Official pixel mode (``read_input`` with ``vid_size``, lib/data/dataset_wild.py).

    ``xy = (xy - [w/2, h/2]) / (min(w, h) / 2)`` on ``x[..., 17, 3]``; the score channel is copied
    unchanged and nothing is clipped (a missing joint at pixel (0, 0) maps to (-w/min(w,h), -h/min(w,h))).
    The image centre maps to (0, 0) and the shorter side spans [-1, 1].

    Returns a new float32 array of ``x``'s shape.

    Raises:
        ValueError: ``width`` or ``height`` is not finite and positive.
    """
    scale = _check_size(width, height)
    out: _F64Array = np.array(x, dtype=np.float64)
    out[..., :2] = (out[..., :2] - np.array([width / 2.0, height / 2.0])) / scale
    return out.astype(np.float32)


def denormalise_pixel(xyz: Floats, width: float, height: float) -> F32Array:
    """Official ``--pixel`` output of ``infer_wild.py``: back from normalised units to pixels.

    ``xyz * (min(w, h) / 2)`` on all three channels, then ``xy += [w/2, h/2]``. It inverts
    ``normalise_pixel`` on x and y; z comes out in the same pixel-like units (not metres).

    Returns a new float32 array of ``xyz``'s shape (``[..., 3]``).

    Raises:
        ValueError: ``width`` or ``height`` is not finite and positive.
    """
    scale = _check_size(width, height)
    out: _F64Array = np.asarray(xyz, dtype=np.float64) * scale
    out[..., :2] += np.array([width / 2.0, height / 2.0])
    return out.astype(np.float32)


def normalise_crop(x: Floats) -> F32Array:
    """Official crop mode (``crop_scale`` with ``scale_range=[1, 1]``, lib/utils/utils_data.py).

    ``x``: ``[..., 17, 3]`` in pixels (x, y, score), a whole sequence. The box of every joint of every
    frame with a non-zero score gives ``scale = max(xmax - xmin, ymax - ymin)`` and the square
    ``[xs, xs + scale] x [ys, ys + scale]`` centred on the box, with ``xs = (xmin + xmax - scale) / 2``
    and ``ys = (ymin + ymax - scale) / 2``; then ``xy = ((xy - [xs, ys]) / scale - 0.5) * 2`` and,
    as the official code does, all three channels (the score too) are clipped to [-1, 1]. Zero-score
    joints do not shape the box but are transformed (and clipped) like the others. The box spans the
    whole sequence, so this mode is not causal.

    Returns a new float32 array of ``x``'s shape.

    Raises:
        ValueError: fewer than ``CROP_MIN_VALID_JOINTS`` (4) joints over the sequence have a non-zero
            score (including none at all), or the box has zero size (every valid joint at one point).
            The official ``crop_scale`` silently returns an all-zero array (scores included) in exactly
            these cases, which makes the model lift an empty pose; we refuse instead, so the caller
            can answer 422. Whenever this function returns, its result equals the official one.
    """
    motion: _F64Array = np.array(x, dtype=np.float64)
    valid = motion[motion[..., 2] != 0][:, :2]  # [N, 2] xy of the joints with non-zero score
    if len(valid) < CROP_MIN_VALID_JOINTS:
        raise ValueError(
            f"crop normalisation needs at least {CROP_MIN_VALID_JOINTS} joints with a non-zero score "
            f"over the sequence, got {len(valid)}"
        )
    xmin, ymin = valid.min(axis=0)
    xmax, ymax = valid.max(axis=0)
    scale = max(xmax - xmin, ymax - ymin)
    if scale == 0:
        raise ValueError(
            "crop normalisation needs joints spread over a non-zero box; all joints with a non-zero "
            "score are at the same point"
        )
    corner = np.array([(xmin + xmax - scale) / 2.0, (ymin + ymax - scale) / 2.0])
    motion[..., :2] = ((motion[..., :2] - corner) / scale - 0.5) * 2.0
    return np.clip(motion, -1.0, 1.0).astype(np.float32)


def flip(x: npt.NDArray[_N]) -> npt.NDArray[_N]:
    """Horizontal flip of ``flip_data`` (lib/utils/utils_data.py) on ``[..., 17, C]``, C >= 1.

    Negates channel 0 (x) of every joint and swaps left and right joints (``FLIP_PERM``). It serves
    both the model input (x, y, score) and its 3D output (x, y, z), and is an involution:
    ``flip(flip(x)) == x`` exactly. Returns a new array of ``x``'s dtype and shape.
    """
    out = x[..., _FLIP_INDEX, :]  # advanced indexing: a copy, never a view
    out[..., 0] = -out[..., 0]
    return out


def normalise(raw: Floats, options: LiftOptions, *, field: str) -> F32Array:
    """The one path from checked keypoints of ``options.format`` (``[T, J, C]``, see ``service.core.arrays``) to
    the model's input: H36M-17, normalised as ``options`` resolve (pixel, crop or none). Requests and stream
    frames both come through here. Raises ``InvalidInput`` naming ``field`` when crop normalisation cannot
    work on the sequence (``normalise_crop``'s ``ValueError``)."""
    x = to_h36m(raw, options.format)
    mode = options.resolved_normalization()
    if mode == "pixel":
        if options.image_size is None:
            raise InvalidInput("pixel normalization needs image_size [width, height]", field="image_size")
        return normalise_pixel(x, *options.image_size)
    if mode == "crop":
        try:
            return normalise_crop(x)
        except ValueError as exc:
            raise InvalidInput(str(exc), field=field) from None
    return x
