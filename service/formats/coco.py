"""The COCO keypoint results format: what detectors write for COCO's evaluation (``pycocotools``' ``loadRes``).

A list ``[{"image_id": <int>, "category_id": 1, "keypoints": [x, y, v] * 17, "score": <float>}, ...]``, in any
order (cocodataset.org, "Results Format": keypoint detection). In results the third number of each joint is the
detector's confidence (MMPose's ``CocoMetric`` writes its keypoint scores there); in ground-truth annotations it
is the visibility flag 0/1/2, passed on as a score too (0: missing; 1 and 2 count as 1 under the service's score
rule). No ids: every detection is tracked by position (``service.formats.tracking``). Frames are the distinct
``image_id`` values in ascending order (so image ids must be numbers or all strings); an image with no detection
is not a frame of the result. An optional ``bbox`` ``[x, y, w, h]`` (COCO's box convention) is used for tracking.
"""

from __future__ import annotations

from typing import Any

from service.formats.detections import Detection, Detections, KeypointFileError, detection, finish, flat_keypoints


def is_coco(data: Any) -> bool:
    """A non-empty list of ``{image_id, keypoints}`` (AlphaPose's lists are told apart first)."""
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(d, dict) and "image_id" in d and "keypoints" in d for d in data)
    )


def read(data: Any, layout: str | None) -> Detections:
    """The detections of a COCO results list; ``KeypointFileError`` naming the element at fault."""
    if not isinstance(data, list):
        raise KeypointFileError("expected a list of results [{image_id, category_id, keypoints, score}]")
    for n, det in enumerate(data):
        if not isinstance(det, dict) or "keypoints" not in det or "image_id" not in det:
            raise KeypointFileError(f"[{n}]: expected a result {{image_id, category_id, keypoints, score}}")
        if isinstance(det["image_id"], bool) or not isinstance(det["image_id"], int | float | str):
            raise KeypointFileError(f"[{n}].image_id: expected a number")
    try:
        images = sorted({d["image_id"] for d in data})
    except TypeError:
        raise KeypointFileError("image_id: numbers and strings mixed; expected numbers") from None
    frame_of = {image: f for f, image in enumerate(images)}
    found: list[Detection] = []
    for n, det in enumerate(data):
        xy, scores = flat_keypoints(det["keypoints"], f"[{n}].keypoints")
        bbox = det.get("bbox")
        box = None
        if isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox):
            box = [bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]]
        found.append(detection(frame_of[det["image_id"]], None, xy, scores, f"[{n}]", box=box, order=n))
    return finish(found, images, layout)
