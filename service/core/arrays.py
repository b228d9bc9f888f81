"""Keypoint arrays as the core takes them: built from nested lists (JSON) with a diagnosis of the first bad
element, then checked against the keypoint format. Part of the contract the Python client shares.

Every failure is an ``InvalidInput`` naming the element (``tracks[2].keypoints[40][3]``), so REST, gRPC, a
stream and the client answer the same mistake with the same message.

Detector scores: a score is a confidence, 0 marking a missing joint. Scores above 1 are taken as 1 (clipped):
RTMPose's SimCC confidences and AlphaPose's scores (e.g. 1.009) exceed 1 and mean "certain"; the model was
trained on [0, 1]. A negative score is refused: no detector writes one, so it is a mistake in the caller's data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, TypeGuard

import numpy as np
import numpy.typing as npt

from service.core.backend import Array
from service.core.options import FORMATS
from service.errors import InvalidInput

SCORE_MAX: Final = 1.0
# x and y, in pixels or already-normalised units: far beyond any image (a 16K frame is 15,360 pixels wide), near
# enough that the model's arithmetic stays finite. Beyond it a value is a mistake (1e30 once gave NaN answers).
COORDINATE_LIMIT: Final = 1e6
# What each nesting level of a sequence ([T][J][C]) or a pose ([J][C]) holds, for messages.
_LEVELS: Final = {3: ("frames", "joints", "numbers"), 2: ("joints", "numbers")}
_REGULAR: Final = "expected nested lists of numbers of equal lengths"


def as_array(value: object, *, ndim: int, field: str) -> Array:
    """``value`` (nested lists of numbers, or an array) as float32 with ``ndim`` dimensions: ``[T, J, C]``
    (3) or ``[J, C]`` (2). Raises ``InvalidInput`` naming the first element that is not a number or breaks the
    shape. Scores (the third of three numbers) above 1 count as 1 already here, so that no score is too large for
    float32; other numbers beyond float32 become infinite (refused later, with their position, by ``check_*``)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged
        raise _diagnose(value, ndim, field) from None
    # Strings, booleans, None, huge integers. Booleans are looked for only in an array of the expected depth:
    # numbers nested less deeply are a shape error below (walking them as joints once raised TypeError, a 500).
    if array.dtype.kind not in "fiu" or (array.ndim == ndim and _has_bool(value, ndim)):
        found = _diagnose(value, ndim, field)
        if found.message != _REGULAR or array.dtype.kind != "O":
            raise found
        try:  # only integers beyond int64 remain: as floats (beyond float32 they become infinite, refused later)
            array = np.asarray(value, dtype=np.float64)
        except OverflowError:
            raise InvalidInput("a number is too large", field=field) from None
    if array.ndim == ndim - 1 and array.size == 0 and array.shape[:1] != (0,):
        array = array.reshape(*array.shape, 2)  # frames without joints: reported as a joint count
    if array.ndim != ndim or array.shape[0] == 0:
        if array.size == 0 and array.ndim <= 1:
            raise InvalidInput(_empty(ndim), field=field)
        shape = "frames x joints x (2 or 3)" if ndim == 3 else "joints x (2 or 3)"
        raise InvalidInput(f"expected {shape} numbers, got an array of shape {list(array.shape)}", field=field)
    if array.shape[-1] == 3 and array.dtype.kind == "f" and array.dtype.itemsize > 4:
        array = _clip_wide_scores(array)
    with np.errstate(over="ignore"):
        return np.asarray(array, dtype=np.float32)


def _clip_wide_scores(array: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.floating[Any]]:
    """The score rule (above ``SCORE_MAX`` counts as ``SCORE_MAX``) applied before the float32 cast: a score
    beyond float32's range (3.4e38) would otherwise become infinite and be refused. Non-finite scores are left to
    the checks. Returns a new array only when a score changes (never modifies the caller's)."""
    scores = array[..., 2]
    over = np.isfinite(scores) & (scores > SCORE_MAX)
    if not over.any():
        return array
    out = array.copy()
    out[..., 2][over] = SCORE_MAX
    return out


def check_sequence(array: Array, *, format: str, field: str, max_frames: int) -> Array:
    """Check a ``[T, J, C]`` sequence of ``format``: ``1 <= T <= max_frames``, J the format's joints, C 2 (x, y)
    or 3 (x, y, score), finite values, x and y within ``COORDINATE_LIMIT``, no negative score. Returns it with
    scores above 1 clipped (a new array only then). Raises ``InvalidInput`` naming the first offending element."""
    frames = array.shape[0]
    if frames == 0:
        raise InvalidInput(_empty(3), field=field)
    if frames > max_frames:
        raise InvalidInput(f"{frames} frames is more than the limit of {max_frames}", field=field)
    return _check(array, format, field, f"{field}[0]")


def check_pose(array: Array, *, format: str, field: str) -> Array:
    """``check_sequence`` for one frame ``[J, C]`` of a stream (positions named ``field[j]``)."""
    return _check(array, format, field, field)


def _check(array: Array, format: str, field: str, first: str) -> Array:
    *_, joints, channels = array.shape
    expected = FORMATS[format]
    if joints != expected:
        raise InvalidInput(f"format {format!r} has {expected} joints per frame, got {joints}", field=first)
    if channels not in (2, 3):
        raise InvalidInput(f"each joint needs 2 (x, y) or 3 (x, y, score) numbers, got {channels}", field=f"{first}[0]")
    finite = np.isfinite(array)
    if not finite.all():
        raise InvalidInput("a value is NaN or infinite", field=_at(field, np.argwhere(~finite)[0][:-1]))
    far = np.abs(array[..., :2]) > COORDINATE_LIMIT
    if far.any():
        where = np.argwhere(far)[0]
        raise InvalidInput(
            f"coordinate {float(array[tuple(where)]):.6g} is outside +-{COORDINATE_LIMIT:.0e}",
            field=_at(field, where),
        )
    if channels == 2:
        return array
    scores = array[..., 2]
    negative = scores < 0
    if negative.any():
        where = np.argwhere(negative)[0]
        raise InvalidInput(
            f"score {float(scores[tuple(where)]):.6g} is negative; a score is a confidence in [0, 1] "
            "(0 marks a missing joint, above 1 counts as 1)",
            field=_at(field, where) + "[2]",
        )
    if (scores > SCORE_MAX).any():
        array = array.copy()
        np.minimum(array[..., 2], SCORE_MAX, out=array[..., 2])
    return array


def _has_bool(value: object, ndim: int) -> bool:
    """Whether nested lists hold a boolean: numpy reads ``true`` as 1.0 beside other numbers. A Python pass over
    every number (about 45 ms for 10,000 frames), so only lists of lists are walked; arrays cannot hold one."""
    if not isinstance(value, list) or not value or not isinstance(value[0], list):
        return False
    if ndim == 2:
        return any(type(x) is bool for joint in value for x in joint)
    return any(type(x) is bool for frame in value for joint in frame for x in joint)


def _at(field: str, index: Sequence[int]) -> str:
    return field + "".join(f"[{int(i)}]" for i in index)


def _empty(ndim: int) -> str:
    return "the sequence is empty; send at least one frame" if ndim == 3 else "the pose is empty; send its joints"


def _is_list(node: object) -> TypeGuard[Sequence[object]]:
    return isinstance(node, list | tuple | np.ndarray)


def _diagnose(value: object, ndim: int, field: str) -> InvalidInput:
    """Walk nested lists to the first element that is not a number or breaks the shape of the first path."""
    levels = _LEVELS[ndim]
    if not _is_list(value):
        return InvalidInput(f"expected a list of {levels[0]}", field=field)
    if len(value) == 0:
        return InvalidInput(_empty(ndim), field=field)
    shape: list[int] = []
    node: object = value
    for _ in levels:  # the lengths along the first path are the reference
        if not _is_list(node) or len(node) == 0:
            break
        shape.append(len(node))
        node = node[0]
    found = _walk(value, [], shape, levels, field)
    return found or InvalidInput(_REGULAR, field=field)


def _walk(node: object, path: list[int], shape: list[int], levels: tuple[str, ...], field: str) -> InvalidInput | None:
    depth = len(path)
    where = _at(field, path)
    if depth == len(levels):
        if isinstance(node, int | float | np.number) and not isinstance(node, bool | np.bool_):
            return None
        return InvalidInput("coordinates must be numbers", field=where)
    if not _is_list(node):
        what = "[x, y] or [x, y, score]" if levels[depth] == "numbers" else f"a list of {levels[depth]}"
        return InvalidInput(f"expected {what}", field=where)
    count = len(node)
    if depth < len(shape) and count != shape[depth]:
        if levels[depth] == "numbers":
            return InvalidInput(
                f"expected [x, y] or [x, y, score] (the same in every joint), got {count} numbers", field=where
            )
        parent = levels[depth - 1][:-1] if depth else "sequence"
        return InvalidInput(
            f"{parent} has {count} {levels[depth]} but {parent} 0 has {shape[depth]}; every {parent} needs the same "
            "count",
            field=where,
        )
    for i, child in enumerate(node):
        found = _walk(child, [*path, i], shape, levels, field)
        if found is not None:
            return found
    return None
