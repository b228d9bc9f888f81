"""Which tracks of a request are lifted, and which of their frames were detected: the track policy.

Detector output holds more people than a user wants (a passer-by seen for three frames, a false detection in
the background) and holes where the detector lost someone. The same three settings apply wherever tracks come
in (``POST /lift``, ``POST /lift/file``, gRPC ``Lift``, the client, ``motionlift lift``), after the tracks'
arrays are checked and before any model work:

- A frame of a track is **detected** unless every joint's score is 0: that is how the readers of detector files
  mark the frames they filled in (``service.formats.tracking``), and what a score of 0 means to the model too.
  Keypoints without scores (2 channels) are detected in every frame. Answers list the undetected frames
  (``filled``), numbered in the video: a track says the frame it starts at (``start``, default 0).
- ``max_gap_frames``: a track is cut into pieces around its detected frames; a gap of at most this many
  undetected frames stays inside a piece, a longer one ends it, and undetected frames before the first and
  after the last detection are left out. Pieces after the first are named ``<id>-2``, ``<id>-3``...
  Unset: tracks are lifted whole, as sent.
- ``min_track_frames``: a track needs this many detected frames; shorter ones are dropped. Unset: none is
  dropped. If none is left, ``InvalidInput`` names the setting and the longest track's count.
- ``person``: ``all`` (unset), ``longest`` (most detected frames), ``largest`` (largest mean box of its
  detected joints), ``most-central`` (mean box centre nearest the image centre: ``image_size``'s, else the
  centre of every track's joints), or a track id, as the answer names it.

Ties go to the track sent first. Detector files get defaults of their own (``service.formats.policy``): a
file's tracks are the readers' guesses, a request's tracks are the caller's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

import numpy as np
import numpy.typing as npt

from service.core.backend import Array
from service.core.options import LiftOptions
from service.core.tracks import Track
from service.errors import InvalidInput

PERSONS: Final = ("all", "longest", "largest", "most-central")

Mask = npt.NDArray[np.bool_]


def detected(keypoints: Array) -> Mask:
    """Per frame of a checked ``[T, J, C]`` sequence: True unless every score is 0 (see the module)."""
    if keypoints.shape[-1] < 3:
        return np.ones(len(keypoints), np.bool_)
    mask: Mask = (keypoints[..., 2] != 0).any(axis=-1)
    return mask


def select(tracks: Sequence[Track], options: LiftOptions) -> list[Track]:
    """The tracks ``options``' policy lifts (see the module), each cut to its piece; the input when no
    setting is given. Raises ``InvalidInput`` naming ``min_track_frames`` or ``person`` when none is left."""
    if options.max_gap_frames is None and options.min_track_frames is None and options.person in (None, "all"):
        return list(tracks)
    pieces = [p for t in tracks for p in _pieces(t, options.max_gap_frames)]
    minimum = options.min_track_frames or 1
    counts = {id(p): int(detected(p.keypoints).sum()) for p in pieces}
    kept = [p for p in pieces if counts[id(p)] >= minimum]
    if not kept:
        longest = max(counts.values(), default=0)
        raise InvalidInput(
            f"no track has {minimum} detected frames; the longest has {longest}: lower min_track_frames for a "
            "short clip (a frame is detected unless all its scores are 0)",
            field="min_track_frames",
        )
    return _person(kept, options.person or "all", options.image_size, counts)


def _pieces(track: Track, max_gap: int | None) -> list[Track]:
    if max_gap is None:
        return [track]
    seen = np.flatnonzero(detected(track.keypoints))
    if len(seen) == 0:
        return []
    breaks = np.flatnonzero(np.diff(seen) > max_gap + 1)  # more than max_gap undetected frames in between
    firsts = [seen[0], *seen[breaks + 1]]
    lasts = [*seen[breaks], seen[-1]]
    out = []
    for n, (a, b) in enumerate(zip(firsts, lasts, strict=True)):
        name = track.id if n == 0 else f"{track.id}-{n + 1}"
        out.append(replace(track, id=name, keypoints=track.keypoints[a : b + 1], start=track.start + int(a)))
    return out


def _person(
    tracks: list[Track], person: str, image_size: tuple[float, float] | None, counts: dict[int, int]
) -> list[Track]:
    if person == "all":
        return tracks
    if person == "longest":
        return [max(tracks, key=lambda t: counts[id(t)])]  # max keeps the first of equals
    if person == "largest":
        return [max(tracks, key=lambda t: float(np.mean(_boxes(t)[:, 2])))]
    if person == "most-central":
        centre = np.asarray(image_size, np.float64) / 2 if image_size is not None else _middle(tracks)
        return [min(tracks, key=lambda t: float(np.linalg.norm(_boxes(t)[:, :2].mean(axis=0) - centre)))]
    chosen = [t for t in tracks if t.id == person]
    if not chosen:
        ids = ", ".join(t.id for t in tracks[:20]) + (", ..." if len(tracks) > 20 else "")
        raise InvalidInput(
            f"no track {person!r} among those kept ({ids}); or use one of {', '.join(PERSONS)}", field="person"
        )
    return chosen


def _boxes(track: Track) -> npt.NDArray[np.float64]:
    """Per detected frame: the centre (x, y) and the area of the box around its joints seen (score > 0)."""
    rows = []
    for pose, seen in zip(track.keypoints, detected(track.keypoints), strict=True):
        if not seen:
            continue
        joints = pose[pose[:, 2] > 0] if pose.shape[1] >= 3 else pose
        low, high = joints[:, :2].min(axis=0), joints[:, :2].max(axis=0)
        rows.append([*(low + high) / 2, float(np.prod(high - low))])
    return np.asarray(rows or [[0.0, 0.0, 0.0]], np.float64)


def _middle(tracks: list[Track]) -> npt.NDArray[np.float64]:
    """The centre of the box around every track's joints: the image centre's stand-in without an image size."""
    points = np.concatenate([t.keypoints[..., :2].reshape(-1, 2) for t in tracks]).astype(np.float64)
    middle: npt.NDArray[np.float64] = (points.min(axis=0) + points.max(axis=0)) / 2
    return middle
