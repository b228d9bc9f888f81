"""MMPose 1.x / RTMPose predictions, in the shapes MMPose saves them.

Each instance is what ``mmpose.structures.split_instances`` makes of a prediction: ``{"keypoints": [[x, y],
...], "keypoint_scores": [s, ...], "bbox": [[x1, y1, x2, y2]], "bbox_score": s}``, plus ``track_id`` when a
tracker gave one. Accepted shapes:

- ``{"meta_info": {...}, "instance_info": [{"frame_id": n, "instances": [...]}, ...]}``: the demos'
  ``--save-predictions`` (``demo/topdown_demo_with_mmdet.py``); ``meta_info.dataset_name`` names the joint set
  (``h36m`` means Human3.6M-17).
- ``[{"frame_id": n, "instances": [...]}, ...]``: ``MMPoseInferencer(...)(video, pred_out_dir=...)`` on a video.
- ``[instance, ...]``: the inferencer's ``pred_out_dir`` file for one image: one frame.
- ``{"predictions": [[instance, ...], ...], ...}``: what the inferencer yields (``result["predictions"]``, one
  list of instances per image of the batch), and a list of those, one per yielded result, frames in order.

Joints: 17 (COCO, or Human3.6M by ``dataset_name``), 26 (Halpe-26), 133 (COCO-WholeBody: the first 17 kept).
Frame ids: ``frame_id`` when given, else the frame's position.
"""

from __future__ import annotations

from typing import Any

from service.formats.detections import Detection, Detections, KeypointFileError, detection, finish, track_id


def is_mmpose(data: Any) -> bool:
    if isinstance(data, dict):
        return "instance_info" in data or "predictions" in data
    if not (isinstance(data, list) and data and all(isinstance(item, dict) for item in data)):
        return False
    return (
        all("instances" in item for item in data)
        or all("predictions" in item for item in data)
        or all("keypoints" in item and "keypoint_scores" in item for item in data)
    )


def _frames(data: Any) -> tuple[list[tuple[Any, Any, str]], Any]:
    """(frame id, instances, where) per frame, and the file's dataset name."""
    if isinstance(data, dict) and "instance_info" in data:
        meta = data.get("meta_info")
        named = meta.get("dataset_name") if isinstance(meta, dict) else None
        frames = data["instance_info"]
        if not isinstance(frames, list) or not frames:
            raise KeypointFileError("instance_info: expected a non-empty list of frames {frame_id, instances}")
        return [_frame(frame, f, f"instance_info[{f}]") for f, frame in enumerate(frames)], named
    results = [data] if isinstance(data, dict) else data
    if isinstance(results, list) and results and all(isinstance(r, dict) and "predictions" in r for r in results):
        out: list[tuple[Any, Any, str]] = []
        for r, result in enumerate(results):
            where = "predictions" if isinstance(data, dict) else f"[{r}].predictions"
            if not isinstance(result["predictions"], list):
                raise KeypointFileError(f"{where}: expected a list of images, each a list of instances")
            out += [(len(out), image, f"{where}[{i}]") for i, image in enumerate(result["predictions"])]
        return out, None
    if not isinstance(data, list) or not data:
        raise KeypointFileError("expected MMPose predictions: [{frame_id, instances}] or {instance_info}")
    if all(isinstance(item, dict) and "instances" not in item for item in data):
        return [(0, data, "")], None  # one image's instances
    return [_frame(frame, f, f"[{f}]") for f, frame in enumerate(data)], None


def _frame(frame: Any, f: int, where: str) -> tuple[Any, Any, str]:
    if not isinstance(frame, dict):
        raise KeypointFileError(f"{where}: expected a frame {{frame_id, instances}}")
    return frame.get("frame_id", f), frame.get("instances"), f"{where}.instances"


def read(data: Any, layout: str | None) -> Detections:
    """The detections of MMPose predictions; ``KeypointFileError`` naming the element at fault."""
    frames, named = _frames(data)
    found: list[Detection] = []
    for f, (_, instances, where) in enumerate(frames):
        if not isinstance(instances, list):
            raise KeypointFileError(f"{where or '[]'}: expected a list of persons")
        for i, person in enumerate(instances):
            at = f"{where}[{i}]"
            if not isinstance(person, dict) or "keypoints" not in person:
                raise KeypointFileError(f"{at}: expected {{keypoints, keypoint_scores, ...}}")
            box = person.get("bbox")
            if isinstance(box, list) and len(box) == 1 and isinstance(box[0], list):
                box = box[0]  # split_instances writes [[x1, y1, x2, y2]]
            found.append(
                detection(
                    f,
                    track_id(person.get("track_id")),
                    person["keypoints"],
                    person.get("keypoint_scores"),
                    at,
                    box=box,
                    order=len(found),
                )
            )
    return finish(found, [frame_id for frame_id, _, _ in frames], layout, named)
