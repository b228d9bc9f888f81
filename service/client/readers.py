"""Keypoint files -> sequences to lift. Three layouts of JSON are read, told apart by their shape:

- ``motionlift``: the body of ``POST /lift`` (``keypoints`` or ``tracks``, ``format``, options).
- ``mmpose``: MMPose 1.x / RTMPose predictions. ``demo/topdown_demo_with_mmdet.py --save-predictions`` writes
  ``{"meta_info": {...}, "instance_info": [{"frame_id": n, "instances": [...]}, ...]}``; the inferencer
  (``MMPoseInferencer(...)(video, pred_out_dir=...)``) writes the bare list ``[{"frame_id", "instances"}]``.
  Each instance has ``keypoints`` ``[[x, y], ...]`` and ``keypoint_scores`` ``[s, ...]`` (from
  ``mmpose.structures.split_instances``), and a ``track_id`` when a tracker gave one.
- ``alphapose``: ``alphapose-results.json``, a list of detections ``{"image_id", "keypoints": [x, y, s] * J,
  "score", "box"?, "idx"?}`` in frame order, ``idx`` the pose-tracking id when tracking ran
  (AlphaPose's ``write_json``). MotionBERT's ``read_input`` takes each detection as the next frame (one
  person); here detections are grouped by ``image_id``, which is the same for one person per frame.

Persons become tracks: by ``track_id`` / ``idx`` when the file has them, else by their index within the
frame (the first person of each frame is track ``"0"``...). A track spans from its first to its last frame;
frames where it is missing get score 0 (the service's mark for a missing joint) and coordinates interpolated
from its neighbouring detections. Scores are passed on as the file has them: the service's one rule takes
RTMPose's and AlphaPose's confidences above 1 as 1 (``service.core.arrays``).

The joint layout follows the joint count: 17 COCO, 26 Halpe-26, and the body joints of the whole-body sets
(COCO-WholeBody 133: its first 17 are COCO's; Halpe-136: its first 26 are Halpe-26's); MMPose's
``meta_info.dataset_name == "h36m"`` means Human3.6M-17. Every problem is a ``KeypointFileError`` naming the
file and the element at fault.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from service.core.backend import Array
from service.core.options import FORMATS

Source = Literal["motionlift", "mmpose", "alphapose"]
SOURCES: tuple[Source, ...] = ("motionlift", "mmpose", "alphapose")
# Joint count -> (layout, how many leading joints are that layout's body joints).
BY_JOINTS: dict[int, tuple[str, int]] = {17: ("coco", 17), 26: ("halpe26", 26), 133: ("coco", 17), 136: ("halpe26", 26)}
# Keys of a POST /lift body that are not options (everything else is passed on to LiftOptions.from_mapping).
SEQUENCE_KEYS = ("keypoints", "tracks", "format")


class KeypointFileError(ValueError):
    """The file cannot be read as keypoints; the message says where and why."""


@dataclass(frozen=True)
class TrackSequence:
    """One person: keypoints ``[T, J, C]`` (float32) from the file's frame ``start`` on."""

    id: str
    keypoints: Array
    start: int = 0


@dataclass(frozen=True)
class KeypointFile:
    """What a file holds. ``single``: one unnamed sequence (our JSON's ``keypoints``); ``options``: the other
    fields of our JSON (``image_size``, ``flip``...) as given, checked where they are used
    (``LiftOptions.from_mapping``); ``frame_ids``: the file's frames, in order."""

    source: Source
    layout: str
    tracks: tuple[TrackSequence, ...]
    frames: int
    frame_ids: tuple[Any, ...] = ()
    single: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def read_keypoints(path: str | Path, *, source: Source | None = None, layout: str | None = None) -> KeypointFile:
    """Read ``path``; ``source`` forces the file layout (default: detected), ``layout`` the joint layout."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeypointFileError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeypointFileError(f"{path}: not a JSON file ({exc})") from None
    try:
        return parse(data, source=source, layout=layout)
    except KeypointFileError as exc:
        raise KeypointFileError(f"{path}: {exc}") from None


def detect(data: Any) -> Source:
    """Which file layout ``data`` (parsed JSON) is; ``KeypointFileError`` when none fits."""
    if isinstance(data, dict):
        if "instance_info" in data:
            return "mmpose"
        if "keypoints" in data or "tracks" in data:
            return "motionlift"
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        if all("instances" in item for item in data):
            return "mmpose"
        if all("image_id" in item and "keypoints" in item for item in data):
            return "alphapose"
    if isinstance(data, list) and not data:
        raise KeypointFileError("the file holds an empty list: no frames or detections")
    raise KeypointFileError(
        "unknown layout: expected a POST /lift body ({keypoints | tracks, format, ...}), MMPose/RTMPose "
        "predictions ([{frame_id, instances}] or {meta_info, instance_info}) or AlphaPose results "
        "([{image_id, keypoints, ...}])"
    )


def parse(data: Any, *, source: Source | None = None, layout: str | None = None) -> KeypointFile:
    """``data`` (parsed JSON) as a ``KeypointFile``; see ``read_keypoints``."""
    if layout is not None and layout not in FORMATS:
        raise KeypointFileError(f"unknown format {layout!r}; expected one of {', '.join(FORMATS)}")
    kind = source or detect(data)
    if kind == "motionlift":
        return _motionlift(data, layout)
    if kind == "mmpose":
        return _mmpose(data, layout)
    if kind == "alphapose":
        return _alphapose(data, layout)
    raise KeypointFileError(f"unknown input format {kind!r}; expected one of {', '.join(SOURCES)}")


def _sequence(value: Any, where: str) -> Array:
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError):
        raise KeypointFileError(f"{where}: expected frames x joints x [x, y(, score)] numbers") from None
    if array.ndim != 3 or array.shape[0] == 0:
        raise KeypointFileError(f"{where}: expected frames x joints x [x, y(, score)], got shape {list(array.shape)}")
    return array


def _motionlift(data: Any, layout: str | None) -> KeypointFile:
    if not isinstance(data, dict) or ("keypoints" in data) == ("tracks" in data):
        raise KeypointFileError("a POST /lift body needs exactly one of keypoints or tracks")
    fmt = layout or data.get("format")
    if fmt not in FORMATS:
        raise KeypointFileError(f"format: {fmt!r} is not one of {', '.join(FORMATS)} (set it with --format)")
    if "keypoints" in data:
        tracks: tuple[TrackSequence, ...] = (TrackSequence("0", _sequence(data["keypoints"], "keypoints")),)
    else:
        if not isinstance(data["tracks"], list) or not data["tracks"]:
            raise KeypointFileError("tracks: expected a non-empty list of {id, keypoints}")
        found = []
        for i, t in enumerate(data["tracks"]):
            if not isinstance(t, dict):
                raise KeypointFileError(f"tracks[{i}]: expected an object {{id, keypoints}}")
            found.append(TrackSequence(str(t.get("id", i)), _sequence(t.get("keypoints"), f"tracks[{i}].keypoints")))
        tracks = tuple(found)
    frames = max(len(t.keypoints) for t in tracks)
    options = {k: v for k, v in data.items() if k not in SEQUENCE_KEYS}
    return KeypointFile("motionlift", fmt, tracks, frames, single="keypoints" in data, options=options)


def _layout(joints: int, forced: str | None, named: str | None, where: str) -> tuple[str, int]:
    """The joint layout of ``joints`` joints per person, and how many leading joints to keep."""
    if forced is not None:
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


class _Tracks:
    """Detections (frame, track id, xy ``[J, 2]``, scores ``[J]``) gathered into per-track sequences."""

    def __init__(self) -> None:
        self.frame_ids: list[Any] = []
        self.people: dict[str, dict[int, Array]] = {}  # id -> frame number -> [J, 3]
        self.joints: int | None = None

    def add(self, frame: int, track: Any, xy: Any, scores: Any, where: str) -> None:
        try:
            points = np.asarray(xy, dtype=np.float64)
            conf = np.ones(len(points)) if scores is None else np.asarray(scores, dtype=np.float64)
        except (ValueError, TypeError):
            raise KeypointFileError(f"{where}: keypoints must be numbers") from None
        if points.ndim != 2 or points.shape[1] != 2 or conf.shape != (len(points),):
            raise KeypointFileError(
                f"{where}: expected keypoints [[x, y], ...] and one score per joint, got shapes "
                f"{list(points.shape)} and {list(conf.shape)}"
            )
        if not (np.isfinite(points).all() and np.isfinite(conf).all()):
            raise KeypointFileError(f"{where}: a value is NaN or infinite")
        if self.joints is None:
            self.joints = len(points)
        elif len(points) != self.joints:
            raise KeypointFileError(f"{where}: {len(points)} joints, but earlier persons have {self.joints}")
        person = self.people.setdefault(_track_id(track), {})
        if frame in person:
            raise KeypointFileError(f"{where}: track {_track_id(track)!r} appears twice in this frame")
        person[frame] = np.concatenate([points, conf[:, None]], axis=1).astype(np.float32)

    def build(self, source: Source, forced: str | None, named: str | None = None) -> KeypointFile:
        if self.joints is None:
            raise KeypointFileError("no person is detected in any frame")
        layout, keep = _layout(self.joints, forced, named, "keypoints")
        tracks = tuple(_span(tid, frames, keep) for tid, frames in self.people.items())
        return KeypointFile(source, layout, tracks, len(self.frame_ids), tuple(self.frame_ids))


def _track_id(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:  # AlphaPose trackers write idx as [id] or id
        value = value[0]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _span(tid: str, frames: dict[int, Array], keep: int) -> TrackSequence:
    """The track from its first to its last frame; gaps: score 0, coordinates interpolated."""
    numbers = sorted(frames)
    first, last = numbers[0], numbers[-1]
    out = np.zeros((last - first + 1, keep, 3), np.float32)
    known = np.asarray(numbers) - first
    stacked = np.stack([frames[n][:keep] for n in numbers])
    out[known] = stacked
    if len(known) < len(out):
        gaps = np.setdiff1d(np.arange(len(out)), known)
        for j in range(keep):
            for c in range(2):
                out[gaps, j, c] = np.interp(gaps, known, stacked[:, j, c])
    return TrackSequence(tid, out, first)


def _mmpose(data: Any, layout: str | None) -> KeypointFile:
    meta = data.get("meta_info") if isinstance(data, dict) else None
    frames = data.get("instance_info") if isinstance(data, dict) else data
    if not isinstance(frames, list) or not frames:
        raise KeypointFileError("instance_info: expected a non-empty list of frames {frame_id, instances}")
    named = meta.get("dataset_name") if isinstance(meta, dict) else None
    people = _Tracks()
    for f, frame in enumerate(frames):
        where = f"instance_info[{f}]" if isinstance(data, dict) else f"[{f}]"
        instances = frame.get("instances") if isinstance(frame, dict) else None
        if not isinstance(instances, list):
            raise KeypointFileError(f"{where}.instances: expected a list of persons")
        people.frame_ids.append(frame.get("frame_id", f))
        for i, person in enumerate(instances):
            at = f"{where}.instances[{i}]"
            if not isinstance(person, dict) or "keypoints" not in person:
                raise KeypointFileError(f"{at}: expected {{keypoints, keypoint_scores, ...}}")
            track = i if person.get("track_id") is None else person["track_id"]
            people.add(f, track, person["keypoints"], person.get("keypoint_scores"), f"{at}.keypoints")
    return people.build("mmpose", layout, named)


def _alphapose(data: Sequence[Any], layout: str | None) -> KeypointFile:
    people = _Tracks()
    frame_of: dict[Any, int] = {}
    count: dict[int, int] = {}  # persons seen so far in each frame: the track of an untracked detection
    for d, det in enumerate(data):
        where = f"[{d}]"
        if not isinstance(det, dict) or "keypoints" not in det or "image_id" not in det:
            raise KeypointFileError(f"{where}: expected a detection {{image_id, keypoints, ...}}")
        image = det["image_id"]
        if image not in frame_of:
            frame_of[image] = len(people.frame_ids)
            people.frame_ids.append(image)
        frame = frame_of[image]
        flat = det["keypoints"]
        if not isinstance(flat, list) or len(flat) % 3 or not flat:
            raise KeypointFileError(f"{where}.keypoints: expected [x, y, score] * joints, flat")
        xy = [flat[i : i + 2] for i in range(0, len(flat), 3)]
        track = count.get(frame, 0) if det.get("idx") is None else det["idx"]
        count[frame] = count.get(frame, 0) + 1
        people.add(frame, track, xy, flat[2::3], f"{where}.keypoints")
    return people.build("alphapose", layout)
