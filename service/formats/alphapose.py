"""AlphaPose's ``alphapose-results.json``: a list of detections in frame order, several per frame.

AlphaPose's ``write_json`` (``alphapose/utils/pPose_nms.py``) writes per person ``{"image_id": <file name>,
"category_id": 1, "keypoints": [x, y, score] * J, "score": <proposal score>, "box"?: [x, y, w, h], "idx"?: <id>}``
in the order of the frames; ``idx`` is the pose-tracking id when tracking ran (``--pose_track`` / PoseFlow),
written as a number, ``[id]`` or a nested list such as ``[[0.0], [0.0]]`` (``track_id`` reads each). Joints: 26
(Halpe-26, the default model), 17 (COCO) or 136 (Halpe-136, its first 26 kept). Frames are the distinct
``image_id`` values in order of first appearance; a frame where AlphaPose found no one has no entry, so it is not
a frame of the result.
"""

from __future__ import annotations

from typing import Any

from service.formats.detections import (
    Detection,
    Detections,
    KeypointFileError,
    detection,
    finish,
    flat_keypoints,
    track_id,
)


def is_alphapose(data: Any) -> bool:
    """A non-empty list of ``{image_id, keypoints}`` with a file-name ``image_id`` or an AlphaPose field."""
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(d, dict) and "image_id" in d and "keypoints" in d for d in data)
        and any(isinstance(d["image_id"], str) or "idx" in d or "box" in d for d in data)
    )


def read(data: Any, layout: str | None) -> Detections:
    """The detections of an AlphaPose results list; ``KeypointFileError`` naming the element at fault."""
    if not isinstance(data, list):
        raise KeypointFileError("expected a list of detections [{image_id, keypoints, ...}]")
    frame_of: dict[Any, int] = {}
    found: list[Detection] = []
    for n, det in enumerate(data):
        where = f"[{n}]"
        if not isinstance(det, dict) or "keypoints" not in det or "image_id" not in det:
            raise KeypointFileError(f"{where}: expected a detection {{image_id, keypoints, ...}}")
        image = det["image_id"]
        if isinstance(image, list | dict):
            raise KeypointFileError(f"{where}.image_id: expected a file name or a number")
        frame = frame_of.setdefault(image, len(frame_of))
        xy, scores = flat_keypoints(det["keypoints"], f"{where}.keypoints")
        box = det.get("box")
        if box is not None:  # [x, y, w, h] -> corners
            if not (isinstance(box, list) and len(box) == 4):
                raise KeypointFileError(f"{where}.box: expected [x, y, width, height]")
            box = [box[0], box[1], _sum(box[0], box[2], where), _sum(box[1], box[3], where)]
        found.append(detection(frame, track_id(det.get("idx")), xy, scores, where, box=box, order=n))
    return finish(found, list(frame_of), layout)


def _sum(a: Any, b: Any, where: str) -> Any:
    try:
        return a + b
    except TypeError:
        raise KeypointFileError(f"{where}.box: expected [x, y, width, height] numbers") from None
