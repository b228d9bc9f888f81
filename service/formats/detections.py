"""What every reader produces: per-frame ``Detection``s in one of the service's joint layouts, and the one
error type of this package.

A reader turns a detector's file into ``Detections``: the file's frames (``frame_ids``, in order), the joint
layout (a key of ``service.core.options.FORMATS``: ``coco``, ``halpe26`` or ``h36m``) and one ``Detection`` per
person per frame. ``detection`` builds one from JSON values and checks it; every problem is a
``KeypointFileError`` naming the element at fault (``[3].keypoints``). Scores are passed on as the file has them
(the service has one rule for scores above 1, ``service.core.arrays``); a NaN or infinite value is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from service.core.options import FORMATS

Floats = npt.NDArray[np.float64]
# Joint count -> (layout, how many leading joints are that layout's body joints): COCO-WholeBody 133 starts with
# COCO's 17, Halpe-136 with Halpe-26 (the whole-body sets of MMPose and AlphaPose).
BY_JOINTS: Final[dict[int, tuple[str, int]]] = {
    17: ("coco", 17),
    26: ("halpe26", 26),
    133: ("coco", 17),
    136: ("halpe26", 26),
}


class KeypointFileError(ValueError):
    """The file cannot be read as keypoints; the message says where and why."""


@dataclass(frozen=True)
class Detection:
    """One person in one frame: ``frame`` (index into the file's frames), ``id`` (the detector's or tracker's
    id, ``None`` when the file has none), ``xy`` ``[J, 2]`` pixels, ``scores`` ``[J]`` and ``box``
    ``(x1, y1, x2, y2)`` pixels when the file gives one. ``order`` is its position in the file, the last
    tie-breaker wherever detections are ranked."""

    frame: int
    id: str | None
    xy: Floats
    scores: Floats
    box: tuple[float, float, float, float] | None = None
    order: int = 0

    @property
    def mean_score(self) -> float:
        return float(self.scores.mean())

    def bounds(self) -> tuple[float, float, float, float]:
        """The box, else the bounding box of the joints with a positive score (of all joints if none)."""
        if self.box is not None:
            return self.box
        seen = self.xy[self.scores > 0]
        points = seen if len(seen) else self.xy
        x1, y1 = points.min(axis=0)
        x2, y2 = points.max(axis=0)
        return float(x1), float(y1), float(x2), float(y2)

    def area(self) -> float:
        x1, y1, x2, y2 = self.bounds()
        return max(x2 - x1, 0.0) * max(y2 - y1, 0.0)


@dataclass(frozen=True)
class Detections:
    """A reader's result: ``layout`` (a ``FORMATS`` key), the file's ``frame_ids`` in order and the detections
    of every frame (each ``Detection.frame`` indexes ``frame_ids``)."""

    layout: str
    frame_ids: tuple[Any, ...]
    detections: tuple[Detection, ...]


def numbers(value: Any, shape: tuple[int, ...] | None, where: str, what: str) -> Floats:
    """``value`` as float64, of ``shape`` (``-1``: any length) when given; finite, else ``KeypointFileError``."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise KeypointFileError(f"{where}: {what} must be numbers") from None
    if shape is not None and (
        array.ndim != len(shape) or any(n not in (-1, got) for n, got in zip(shape, array.shape, strict=True))
    ):
        raise KeypointFileError(f"{where}: expected {what}, got shape {list(array.shape)}")
    if np.isnan(array).any():
        raise KeypointFileError(f"{where}: a value is NaN (element {_first(np.isnan(array))})")
    if not np.isfinite(array).all():
        raise KeypointFileError(f"{where}: a value is infinite (element {_first(~np.isfinite(array))})")
    return array


def _first(mask: npt.NDArray[np.bool_]) -> list[int]:
    return [int(i) for i in np.argwhere(mask)[0]]


def detection(
    frame: int, id: str | None, xy: Any, scores: Any, where: str, *, box: Any = None, order: int = 0
) -> Detection:
    """A checked ``Detection``: ``xy`` ``[[x, y], ...]``, one score per joint (``None``: every score 1), ``box``
    ``(x1, y1, x2, y2)`` or ``None``. A NaN or infinite value is a ``KeypointFileError`` naming ``where``."""
    points = numbers(xy, (-1, 2), f"{where}.keypoints", "keypoints [[x, y], ...]")
    if scores is None:
        conf = np.ones(len(points))
    else:
        conf = numbers(scores, (len(points),), f"{where}.scores", f"{len(points)} scores, one per joint")
    corners = None
    if box is not None:
        b = numbers(box, (4,), f"{where}.box", "a box of 4 numbers")
        corners = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
    return Detection(frame, id, points, conf, corners, order)


def track_id(value: Any) -> str | None:
    """An id as the file writes it -> a string, ``None`` when absent or ambiguous. Numbers lose a ``.0``
    (``3.0`` -> ``"3"``); a list, however nested, is its one distinct value (AlphaPose writes ``idx`` as ``3``,
    ``[3]`` or ``[[3.0], [3.0]]``); a list of several distinct values names no one person: ``None``. OpenPose's
    ``-1`` ("no id") is left to its reader."""
    if isinstance(value, list):
        flat = _flatten(value)
        distinct = {track_id(v) for v in flat}
        return distinct.pop() if len(distinct) == 1 else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _flatten(item)]
    return [value]


def layout_of(joints: int, forced: str | None, named: str | None, where: str) -> tuple[str, int]:
    """The joint layout of ``joints`` joints per person, and how many leading joints to keep. ``forced``: the
    caller's choice (checked against the count); ``named``: the file's own dataset name (MMPose's
    ``meta_info.dataset_name``), which tells Human3.6M-17 from COCO-17."""
    if forced is not None:
        if forced not in FORMATS:
            raise KeypointFileError(f"unknown format {forced!r}; expected one of {', '.join(FORMATS)}")
        if joints == FORMATS[forced] or BY_JOINTS.get(joints, ("", 0))[0] == forced:
            return forced, FORMATS[forced]
        raise KeypointFileError(f"{where}: {joints} joints per person cannot be format {forced!r}")
    if named == "h36m" and joints == 17:
        return "h36m", 17
    if joints not in BY_JOINTS:
        raise KeypointFileError(
            f"{where}: {joints} joints per person; expected 17 (COCO), 26 (Halpe-26), 133 (COCO-WholeBody) "
            "or 136 (Halpe-136)"
        )
    return BY_JOINTS[joints]


def finish(found: list[Detection], frame_ids: list[Any], forced: str | None, named: str | None = None) -> Detections:
    """All of a file's detections in one layout: the same joint count everywhere, cut to the layout's body
    joints. ``KeypointFileError`` when no one is detected or the counts differ."""
    if not found:
        raise KeypointFileError("no person is detected in any frame")
    joints = len(found[0].xy)
    for d in found:
        if len(d.xy) != joints:
            raise KeypointFileError(
                f"frame {frame_ids[d.frame]!r}: {len(d.xy)} joints, but earlier persons have {joints}"
            )
    layout, keep = layout_of(joints, forced, named, "keypoints")
    if keep != joints:
        found = [Detection(d.frame, d.id, d.xy[:keep], d.scores[:keep], d.box, d.order) for d in found]
    return Detections(layout, tuple(frame_ids), tuple(found))


def mapped(found: list[Detection], table: tuple[int, ...]) -> list[Detection]:
    """Detections with their joints picked by ``table`` (new joint i is old joint ``table[i]``)."""
    index = list(table)
    return [Detection(d.frame, d.id, d.xy[index], d.scores[index], d.box, d.order) for d in found]


def flat_keypoints(value: Any, where: str) -> tuple[Any, Any]:
    """COCO's flat ``[x1, y1, s1, x2, y2, s2, ...]`` (also AlphaPose's and OpenPose's) -> (xy, scores)."""
    if not isinstance(value, list) or not value or len(value) % 3:
        raise KeypointFileError(f"{where}: expected [x, y, score] * joints, flat")
    return [value[i : i + 2] for i in range(0, len(value), 3)], value[2::3]
