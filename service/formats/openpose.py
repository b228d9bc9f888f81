"""OpenPose's ``--write_json`` output: a folder with one ``<name>_<frame:012d>_keypoints.json`` per frame.

Each file is ``{"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": [x, y, c] * J, ...}]}``
(OpenPose ``doc/02_output.md``, "JSON-UI Output Format"); a joint OpenPose did not find is written as ``0, 0, 0``,
which stays score 0 here (missing). ``person_id`` is ``[-1]`` unless OpenPose's tracking ran: -1 means no id. J is
25 (``BODY_25``, the default model) or 18 (``COCO``, ``--model_pose COCO``); both are mapped to COCO-17 by the
tables below (OpenPose's joint order is ``doc/02_output.md``'s "Pose Output Format"; COCO-17's is nose, left eye,
right eye, left ear, right ear, then shoulders, elbows, wrists, hips, knees, ankles, each left then right).
Frames: the files in name order (OpenPose's zero-padded frame numbers sort in frame order); the frame ids are the
file names. OpenPose's neck, mid-hip and feet have no COCO-17 joint and are dropped.
"""

from __future__ import annotations

from typing import Any, Final

from service.formats.detections import (
    Detection,
    Detections,
    KeypointFileError,
    detection,
    finish,
    flat_keypoints,
    mapped,
    track_id,
)

# COCO-17 joint i is OpenPose joint TABLE[i].
# BODY_25: 0 nose, 1 neck, 2-4 right shoulder/elbow/wrist, 5-7 left shoulder/elbow/wrist, 8 mid-hip,
# 9-11 right hip/knee/ankle, 12-14 left hip/knee/ankle, 15 right eye, 16 left eye, 17 right ear, 18 left ear,
# 19-24 feet.
BODY_25_TO_COCO: Final = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
# COCO-18: as BODY_25 without the mid-hip and feet: 8-10 right hip/knee/ankle, 11-13 left, 14/15 right/left
# eye, 16/17 right/left ear.
COCO_18_TO_COCO: Final = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)
TABLES: Final = {25: BODY_25_TO_COCO, 18: COCO_18_TO_COCO}


def is_openpose(data: Any) -> bool:
    """One frame ``{people: [...]}`` or a list of them."""
    frames = data if isinstance(data, list) else [data]
    return bool(frames) and all(isinstance(f, dict) and "people" in f for f in frames)


def read(data: Any, layout: str | None, frame_ids: list[Any] | None = None) -> Detections:
    """The detections of OpenPose frames (``data``: one frame or a list, ``frame_ids`` their names, default
    their positions), as COCO-17; ``KeypointFileError`` naming the element at fault."""
    frames = data if isinstance(data, list) else [data]
    names = frame_ids if frame_ids is not None else list(range(len(frames)))
    found: list[Detection] = []
    for f, frame in enumerate(frames):
        where = str(names[f]) if frame_ids is not None else f"[{f}]"
        people = frame.get("people") if isinstance(frame, dict) else None
        if not isinstance(people, list):
            raise KeypointFileError(f"{where}: expected {{people: [{{pose_keypoints_2d, ...}}]}}")
        for p, person in enumerate(people):
            at = f"{where}.people[{p}]"
            if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
                raise KeypointFileError(f"{at}: expected {{pose_keypoints_2d: [x, y, c] * joints, ...}}")
            xy, scores = flat_keypoints(person["pose_keypoints_2d"], f"{at}.pose_keypoints_2d")
            if len(xy) not in TABLES:
                raise KeypointFileError(f"{at}.pose_keypoints_2d: {len(xy)} joints; expected 25 (BODY_25) or 18 (COCO)")
            pid = track_id(person.get("person_id"))
            found.append(detection(f, None if pid == "-1" else pid, xy, scores, at, order=len(found)))
    if found and any(len(d.xy) != len(found[0].xy) for d in found):
        raise KeypointFileError("pose_keypoints_2d: BODY_25 and COCO-18 people mixed")
    converted = mapped(found, TABLES[len(found[0].xy)]) if found else found
    return finish(converted, names, layout)
