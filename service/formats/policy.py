"""Which tracks of a detector file are lifted: the track policy of ``motionlift lift`` and ``POST /lift/file``.

Detector output holds more people than a user wants: a passer-by seen for three frames, a false detection in the
background, a reflection. The policy, applied after tracking (``tracking.py``, whose ``max_gap`` it sets):

- ``max_gap_frames`` (default ``tracking.MAX_GAP``, 30: one second at 30 fps): a track's gaps up to this many
  frames are filled (interpolated, score 0); after a longer one its id starts a new track (``<id>-2``...);
- ``min_track_frames`` (default 30, about one second): a track needs this many frames with a real detection;
  shorter ones are dropped (a short clip needs a lower value: the error says so);
- ``person``: ``all`` (default), ``longest`` (most detected frames), ``largest`` (largest mean box of its detected
  joints), ``most-central`` (mean box centre nearest the image centre: ``image_size``'s, else the centre of all the
  tracks' joints), or a track id (as the answer names it).

Ties go to the track that starts first. Every refusal is a ``KeypointFileError`` naming the setting.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from service.formats.detections import KeypointFileError
from service.formats.files import KeypointFile
from service.formats.tracking import MAX_GAP, TrackSequence

MIN_TRACK_FRAMES: Final = 30
PERSONS: Final = ("all", "longest", "largest", "most-central")


@dataclass(frozen=True)
class TrackPolicy:
    """See the module. ``KeypointFileError`` from ``check`` for values out of range."""

    min_track_frames: int = MIN_TRACK_FRAMES
    max_gap_frames: int = MAX_GAP
    person: str = "all"

    def check(self) -> TrackPolicy:
        if self.min_track_frames < 1:
            raise KeypointFileError(f"min_track_frames must be at least 1, got {self.min_track_frames}")
        if self.max_gap_frames < 0:
            raise KeypointFileError(f"max_gap_frames must be 0 or more, got {self.max_gap_frames}")
        if not self.person:
            raise KeypointFileError(f"person must be one of {', '.join(PERSONS)} or a track id")
        return self


def select(file: KeypointFile, policy: TrackPolicy, image_size: tuple[float, float] | None = None) -> KeypointFile:
    """``file`` with only the tracks the policy keeps (``max_gap_frames`` is applied when the file is read)."""
    if file.single:  # one unnamed sequence of our own JSON: nothing to choose from
        return file
    kept = [t for t in file.tracks if int(t.detected.sum()) >= policy.min_track_frames]
    if not kept:
        longest = max((int(t.detected.sum()) for t in file.tracks), default=0)
        raise KeypointFileError(
            f"no track has {policy.min_track_frames} detected frames (min_track_frames); the longest has {longest}: "
            "lower min_track_frames for a short clip"
        )
    return replace(file, tracks=tuple(_person(kept, policy.person, image_size)))


def _person(tracks: list[TrackSequence], person: str, image_size: tuple[float, float] | None) -> list[TrackSequence]:
    if person == "all":
        return tracks
    if person == "longest":
        return [max(tracks, key=lambda t: int(t.detected.sum()))]  # max keeps the first of equals
    if person == "largest":
        return [max(tracks, key=lambda t: float(np.mean(_boxes(t)[:, 2])))]
    if person == "most-central":
        centre = np.asarray(image_size, np.float64) / 2 if image_size is not None else _middle(tracks)
        return [min(tracks, key=lambda t: float(np.linalg.norm(_boxes(t)[:, :2].mean(axis=0) - centre)))]
    chosen = [t for t in tracks if t.id == person]
    if not chosen:
        ids = ", ".join(t.id for t in tracks[:20])
        raise KeypointFileError(
            f"person: no track {person!r} among those kept ({ids}); or use one of {', '.join(PERSONS)}"
        )
    return chosen


def _boxes(track: TrackSequence) -> np.ndarray:  # type: ignore[type-arg]
    """Per detected frame: the centre (x, y) and the area of the box around its joints seen (score > 0)."""
    rows = []
    for pose, seen in zip(track.keypoints, track.detected, strict=True):
        if not seen:
            continue
        joints = pose[pose[:, 2] > 0] if pose.shape[1] == 3 else pose
        if len(joints) == 0:
            continue
        low, high = joints[:, :2].min(axis=0), joints[:, :2].max(axis=0)
        rows.append([*(low + high) / 2, float(np.prod(high - low))])
    return np.asarray(rows or [[0.0, 0.0, 0.0]], np.float64)


def _middle(tracks: list[TrackSequence]) -> np.ndarray:  # type: ignore[type-arg]
    """The centre of the box around every track's joints: the image centre's stand-in without an image size."""
    points = np.concatenate([t.keypoints[..., :2].reshape(-1, 2) for t in tracks]).astype(np.float64)
    middle: np.ndarray = (points.min(axis=0) + points.max(axis=0)) / 2  # type: ignore[type-arg]
    return middle
