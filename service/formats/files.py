"""Keypoint files -> ``KeypointFile``: every person a detector found, as tracks ready to lift.

``read_keypoints(path)`` reads a JSON file (or, for OpenPose, a folder of per-frame JSON files), ``parse(data)``
the parsed JSON. The layout of the file (``source``) is detected from its shape by ``detect``, or forced:

- ``motionlift``: the body of ``POST /lift`` (``service.formats.body``);
- ``mmpose``: MMPose 1.x / RTMPose predictions (``service.formats.mmpose``);
- ``alphapose``: AlphaPose's ``alphapose-results.json`` (``service.formats.alphapose``);
- ``coco``: COCO keypoint results ``[{image_id, category_id, keypoints, score}]`` (``service.formats.coco``);
- ``openpose``: OpenPose ``*_keypoints.json`` per frame (``service.formats.openpose``);
- ``mediapipe``: MediaPipe Pose landmarks, needing the image size (``service.formats.mediapipe``);
- ``yolo``: Ultralytics YOLO pose ``Results.summary()`` per frame (``service.formats.yolo``).

Every detector's detections become tracks by ``service.formats.tracking`` (its ids while consistent, else
association by position); the joint layout (``KeypointFile.layout``) is one of the service's ``FORMATS``:
``coco``, ``halpe26`` or ``h36m``, which the service converts to Human3.6M-17 itself. Every problem is a
``KeypointFileError`` naming the file and the element at fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from service.core.options import FORMATS
from service.formats import alphapose, archive, body, coco, mediapipe, mmpose, openpose, yolo
from service.formats.detections import Detections, KeypointFileError
from service.formats.tracking import MAX_GAP, TrackSequence, build_tracks

__all__ = [
    "SOURCES",
    "KeypointFile",
    "KeypointFileError",
    "Source",
    "TrackSequence",
    "detect",
    "parse",
    "read_keypoints",
]

Source = Literal["motionlift", "mmpose", "alphapose", "coco", "openpose", "mediapipe", "yolo"]
SOURCES: Final[tuple[Source, ...]] = ("motionlift", "mmpose", "alphapose", "coco", "openpose", "mediapipe", "yolo")
# The order detect tries them in: AlphaPose before COCO (AlphaPose's list is a COCO results list with more).
_SHAPES: Final = (
    ("motionlift", body.is_body, "a POST /lift body {keypoints | tracks, format, ...}"),
    ("mmpose", mmpose.is_mmpose, "MMPose/RTMPose predictions [{frame_id, instances}], {meta_info, instance_info} "
     "or {predictions}"),
    ("alphapose", alphapose.is_alphapose, "AlphaPose results [{image_id: '<file>', keypoints, idx?, box?}]"),
    ("coco", coco.is_coco, "COCO keypoint results [{image_id, category_id, keypoints, score}]"),
    ("openpose", openpose.is_openpose, "OpenPose frames {people: [{pose_keypoints_2d}]} (or a folder of them)"),
    ("mediapipe", mediapipe.is_mediapipe, "MediaPipe Pose landmarks [{pose_landmarks}] or {image_size, frames}"),
    ("yolo", yolo.is_yolo, "Ultralytics YOLO pose results [[{box, keypoints: {x, y, visible}}]]"),
)  # fmt: skip


@dataclass(frozen=True)
class KeypointFile:
    """What a file holds. ``tracks``: one per person, in the order they start; ``frames``: how many frames
    the file has (``frame_ids``: their names or numbers, in order); ``single``: one unnamed sequence (our
    JSON's ``keypoints``); ``options``: the other fields of our JSON (``image_size``, ``flip``...) as given,
    checked where they are used (``LiftOptions.from_mapping``)."""

    source: Source
    layout: str
    tracks: tuple[TrackSequence, ...]
    frames: int
    frame_ids: tuple[Any, ...] = ()
    single: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def read_keypoints(
    path: str | Path,
    source: Source | None = None,
    layout: str | None = None,
    *,
    image_size: tuple[float, float] | None = None,
    max_gap: int = MAX_GAP,
) -> KeypointFile:
    """Read ``path``: a JSON file, or a folder of OpenPose ``*_keypoints.json`` files. ``source`` forces the
    file layout (default: ``detect``), ``layout`` the joint layout (default: from the joint count),
    ``image_size`` ``(width, height)`` is for MediaPipe's normalised landmarks when the file has none;
    ``max_gap``: frames without a detection after which a track ends (``tracking.py``)."""
    path = Path(path)
    try:
        if path.is_dir():
            data, names = _folder(path)
            return parse(data, source or "openpose", layout, image_size=image_size, frame_ids=names, max_gap=max_gap)
        if path.suffix.lower() == ".zip":
            data, ids = archive.unpack(_bytes(path))
            source = source or ("openpose" if ids is not None else None)
            return parse(data, source, layout, image_size=image_size, frame_ids=ids, max_gap=max_gap)
        data = _json(path)
        return parse(data, source, layout, image_size=image_size, max_gap=max_gap)
    except KeypointFileError as exc:
        raise KeypointFileError(f"{path}: {exc}") from None


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeypointFileError(f"cannot read it: {exc.strerror or exc}") from None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeypointFileError(f"cannot read it: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeypointFileError(f"not a JSON file ({exc})") from None


def _folder(path: Path) -> tuple[list[Any], list[Any]]:
    """OpenPose's per-frame files of ``path``, in name order, and their names."""
    files = sorted(path.glob("*_keypoints.json")) or sorted(path.glob("*.json"))
    if not files:
        raise KeypointFileError("a folder, but no *_keypoints.json (OpenPose) file in it")
    frames = []
    for file in files:
        try:
            frames.append(_json(file))
        except KeypointFileError as exc:
            raise KeypointFileError(f"{file.name}: {exc}") from None
    return frames, [file.name for file in files]


def detect(data: Any) -> Source:
    """Which file layout ``data`` (parsed JSON) is; ``KeypointFileError`` listing every layout when none fits."""
    if isinstance(data, list) and not data:
        raise KeypointFileError("the file holds an empty list: no frames or detections")
    for name, fits, _ in _SHAPES:
        if fits(data):
            return name  # type: ignore[return-value]
    expected = "; ".join(f"{name}: {what}" for name, _, what in _SHAPES)
    raise KeypointFileError(f"unknown layout: expected one of {expected}")


def parse(
    data: Any,
    source: Source | None = None,
    layout: str | None = None,
    *,
    image_size: tuple[float, float] | None = None,
    frame_ids: list[Any] | None = None,
    max_gap: int = MAX_GAP,
) -> KeypointFile:
    """``data`` (parsed JSON) as a ``KeypointFile``; see ``read_keypoints``. ``frame_ids``: OpenPose's frame
    names (its file names)."""
    if layout is not None and layout not in FORMATS:
        raise KeypointFileError(f"unknown format {layout!r}; expected one of {', '.join(FORMATS)}")
    kind = source or detect(data)
    if kind == "motionlift":
        fmt, tracks, options = body.read(data, layout)
        frames = max(len(t.keypoints) for t in tracks)
        return KeypointFile(kind, fmt, tracks, frames, single="keypoints" in data, options=options)
    found: Detections
    if kind == "mmpose":
        found = mmpose.read(data, layout)
    elif kind == "alphapose":
        found = alphapose.read(data, layout)
    elif kind == "coco":
        found = coco.read(data, layout)
    elif kind == "openpose":
        found = openpose.read(data, layout, frame_ids)
    elif kind == "mediapipe":
        found = mediapipe.read(data, layout, image_size)
    elif kind == "yolo":
        found = yolo.read(data, layout)
    else:
        raise KeypointFileError(f"unknown input format {kind!r}; expected one of {', '.join(SOURCES)}")
    tracks = build_tracks(found.detections, len(found.frame_ids), max_gap=max_gap)
    return KeypointFile(kind, found.layout, tracks, len(found.frame_ids), found.frame_ids)
