"""MediaPipe Pose / BlazePose landmarks saved as JSON: 33 landmarks per pose in normalised image coordinates.

MediaPipe writes no file itself; this reads what its results turn into with ``json`` or protobuf's
``MessageToDict``. A landmark is ``{"x", "y", "z"?, "visibility"?, "presence"?}``, x and y in [0, 1] of the
image's width and height (``NormalizedLandmark``); ``visibility`` becomes the score (absent: 1). Accepted:

- the file: ``{"image_size": [w, h] | "image_width"/"image_height", "frames": [frame, ...]}`` or ``[frame, ...]``;
- a frame: ``{"pose_landmarks": [pose, ...]}`` (the Tasks API's ``PoseLandmarkerResult``, one entry per pose),
  ``{"landmark": [...]}`` (the legacy ``mp.solutions.pose`` result's ``pose_landmarks``, one pose), a list of
  poses, or ``null`` / ``{}`` (no pose); other keys (``timestamp_ms``, ``frame``) are ignored;
- a pose: a list of 33 landmarks or ``{"landmark": [...]}``.

Pixels need the image size: the file's, else the reader's ``image_size`` argument, else a ``KeypointFileError``
naming it. The 33 landmarks (MediaPipe's pose landmark model: 0 nose, 1-3 left eye inner/eye/outer, 4-6 right
eye inner/eye/outer, 7/8 left/right ear, 9/10 mouth, 11/12 left/right shoulder, 13/14 elbows, 15/16 wrists, 17-22
hands, 23/24 left/right hip, 25/26 knees, 27/28 ankles, 29-32 feet) are mapped to COCO-17 by ``TO_COCO``.
MediaPipe gives no ids: poses are tracked by position.
"""

from __future__ import annotations

from typing import Any, Final

from service.formats.detections import Detection, Detections, KeypointFileError, detection, finish, mapped, numbers

LANDMARKS: Final = 33
# COCO-17 joint i is MediaPipe landmark TO_COCO[i].
TO_COCO: Final = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


def is_mediapipe(data: Any) -> bool:
    frames = data.get("frames") if isinstance(data, dict) else data
    if not isinstance(frames, list) or not frames:
        return False
    poses = [f for f in frames if f is not None]
    return bool(poses) and all(isinstance(f, dict) and ("pose_landmarks" in f or "landmark" in f) for f in poses)


def read(data: Any, layout: str | None, image_size: tuple[float, float] | None = None) -> Detections:
    """The poses of MediaPipe frames in pixels, as COCO-17; ``KeypointFileError`` naming the element at fault,
    or naming ``image_size`` when neither the file nor the caller gives it."""
    frames = data.get("frames") if isinstance(data, dict) else data
    if not isinstance(frames, list):
        raise KeypointFileError("frames: expected a list of frames {pose_landmarks: [...]}")
    width, height = _size(data, image_size)
    found: list[Detection] = []
    for f, frame in enumerate(frames):
        where = f"frames[{f}]" if isinstance(data, dict) else f"[{f}]"
        for pose, at in _poses(frame, where):
            landmarks = pose.get("landmark") if isinstance(pose, dict) else pose
            if not isinstance(landmarks, list) or len(landmarks) != LANDMARKS:
                raise KeypointFileError(f"{at}: expected {LANDMARKS} landmarks {{x, y, z, visibility}}")
            xy, scores = [], []
            for n, mark in enumerate(landmarks):
                if not isinstance(mark, dict) or "x" not in mark or "y" not in mark:
                    raise KeypointFileError(f"{at}[{n}]: expected a landmark {{x, y, z, visibility}}")
                xy.append([mark["x"], mark["y"]])
                scores.append(mark.get("visibility", 1.0))
            pixels = numbers(xy, (-1, 2), at, "landmarks x, y") * [width, height]
            found.append(detection(f, None, pixels, scores, at, order=len(found)))
    return finish(mapped(found, TO_COCO), list(range(len(frames))), layout)


def _poses(frame: Any, where: str) -> list[tuple[Any, str]]:
    if frame is None or frame == {}:
        return []
    if isinstance(frame, dict) and "landmark" in frame:
        return [(frame, f"{where}.landmark")]
    poses = frame.get("pose_landmarks") if isinstance(frame, dict) else frame
    key = f"{where}.pose_landmarks" if isinstance(frame, dict) else where
    if poses is None:
        return []
    if isinstance(poses, dict):  # the legacy result's pose_landmarks as MessageToDict writes it
        return [(poses, key)]
    if not isinstance(poses, list):
        raise KeypointFileError(f"{key}: expected a list of poses, each 33 landmarks")
    return [(pose, f"{key}[{p}]") for p, pose in enumerate(poses)]


def _size(data: Any, given: tuple[float, float] | None) -> tuple[float, float]:
    found: Any = None
    if isinstance(data, dict):
        if "image_size" in data:
            found = data["image_size"]
        elif "image_width" in data or "image_height" in data:
            found = [data.get("image_width"), data.get("image_height")]
    if found is None:
        found = given
    if found is None:
        raise KeypointFileError(
            "image_size: MediaPipe landmarks are fractions of the image; give the image size in pixels "
            "(image_size=(width, height), or --image-size W H)"
        )
    size = numbers(found if isinstance(found, list | tuple) else [found], (2,), "image_size", "[width, height]")
    if (size <= 0).any():
        raise KeypointFileError(f"image_size: expected a positive width and height, got {size.tolist()}")
    return float(size[0]), float(size[1])
