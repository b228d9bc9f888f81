"""Ultralytics YOLO pose results exported as JSON (YOLOv8-pose, YOLO11-pose).

``Results.to_json()`` / ``Results.summary()`` (``ultralytics/engine/results.py``) describe one image as a list of
detections ``{"name": "person", "class": 0, "confidence": c, "box": {"x1", "y1", "x2", "y2"}, "track_id"?: n,
"keypoints": {"x": [...], "y": [...], "visible": [...]}}``: 17 COCO joints in pixels (unless ``normalize=True``
was asked for, which this reader cannot tell), ``visible`` the keypoint confidences, ``track_id`` present when
the results came from ``model.track(...)``. Ultralytics has no file for a video; accepted here are a list with
one such list per frame, ``[[detection, ...], ...]`` (``[r.summary() for r in model(video, stream=True)]``), and
one image's list, ``[detection, ...]``, as one frame. A wrapped shape such as ``[{frame, results}]`` is not
accepted: Ultralytics documents none, so it would be a guess at someone's own script. Detections of a class
without keypoints (a detection model's) are skipped.
"""

from __future__ import annotations

from typing import Any

from service.formats.detections import Detection, Detections, KeypointFileError, detection, finish, track_id


def _is_detection(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("keypoints"), dict) and "x" in item["keypoints"]


def is_yolo(data: Any) -> bool:
    if not isinstance(data, list) or not data:
        return False
    if all(isinstance(frame, list) for frame in data):
        return any(frame for frame in data) and all(_is_detection(d) for frame in data for d in frame)
    return all(_is_detection(d) for d in data)


def read(data: Any, layout: str | None) -> Detections:
    """The detections of YOLO pose results; ``KeypointFileError`` naming the element at fault."""
    if not isinstance(data, list) or not data:
        raise KeypointFileError("expected a list of frames, each a list of detections {box, keypoints, ...}")
    frames = data if all(isinstance(frame, list) for frame in data) else [data]
    found: list[Detection] = []
    for f, frame in enumerate(frames):
        for n, det in enumerate(frame):
            where = f"[{f}][{n}]" if frames is data else f"[{n}]"
            if not isinstance(det, dict):
                raise KeypointFileError(f"{where}: expected a detection {{box, keypoints, ...}}")
            points = det.get("keypoints")
            if points is None and "box" in det:
                continue  # a detect-only result (no pose)
            if not isinstance(points, dict) or "x" not in points or "y" not in points:
                raise KeypointFileError(f"{where}.keypoints: expected {{x: [...], y: [...], visible: [...]}}")
            xs, ys = points["x"], points["y"]
            if not (isinstance(xs, list) and isinstance(ys, list) and len(xs) == len(ys)):
                raise KeypointFileError(f"{where}.keypoints: expected lists x and y of equal length")
            box = det.get("box")
            corners = [box.get(k) for k in ("x1", "y1", "x2", "y2")] if isinstance(box, dict) else None
            found.append(
                detection(
                    f,
                    track_id(det.get("track_id")),
                    [[x, y] for x, y in zip(xs, ys, strict=True)],
                    points.get("visible"),
                    where,
                    box=corners,
                    order=len(found),
                )
            )
    return finish(found, list(range(len(frames))), layout)
