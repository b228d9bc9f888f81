"""The track policy (service/formats/policy.py) on hand-made tracks: who is kept, and the errors' words."""

from __future__ import annotations

import numpy as np
import pytest

from service.formats.detections import KeypointFileError
from service.formats.files import KeypointFile
from service.formats.policy import TrackPolicy, select
from service.formats.tracking import TrackSequence


def track(tid: str, frames: int, *, at: tuple[float, float], size: float, missing: int = 0) -> TrackSequence:
    """``frames`` frames of a square of 17 joints of side ``size`` around ``at``; the last ``missing`` filled."""
    grid = np.linspace(-size / 2, size / 2, 17, dtype=np.float32)
    pose = np.stack([at[0] + grid, at[1] + grid[::-1], np.full(17, 0.9, np.float32)], axis=-1)
    keypoints = np.repeat(pose[None], frames, axis=0)
    detected = np.ones(frames, np.bool_)
    if missing:
        detected[-missing:] = False
        keypoints[-missing:, :, 2] = 0.0
    return TrackSequence(tid, keypoints, 0, detected)


def file(*tracks: TrackSequence) -> KeypointFile:
    return KeypointFile("alphapose", "coco", tracks, max(len(t.keypoints) for t in tracks))


PEOPLE = file(
    track("walker", 40, at=(900.0, 500.0), size=100.0),  # 40 detected, small, central
    track("giant", 35, at=(200.0, 300.0), size=400.0, missing=3),  # 32 detected, large, off-centre
    track("glimpse", 5, at=(950.0, 520.0), size=50.0),  # 5 detected: a passer-by
)


def ids(kept: KeypointFile) -> list[str]:
    return [t.id for t in kept.tracks]


def test_short_tracks_are_dropped_and_people_picked() -> None:
    assert ids(select(PEOPLE, TrackPolicy())) == ["walker", "giant"]
    assert ids(select(PEOPLE, TrackPolicy(min_track_frames=33))) == ["walker"]  # giant has 32 detected frames
    assert ids(select(PEOPLE, TrackPolicy(min_track_frames=1, person="longest"))) == ["walker"]
    assert ids(select(PEOPLE, TrackPolicy(min_track_frames=1, person="largest"))) == ["giant"]
    assert ids(select(PEOPLE, TrackPolicy(person="most-central"), (1920.0, 1080.0))) == ["walker"]
    assert ids(select(PEOPLE, TrackPolicy(min_track_frames=1, person="glimpse"))) == ["glimpse"]
    # Without an image size the centre is that of all the tracks' joints (x 0..975, y 100..550): (487.5, 325),
    # 289 px from the giant's centre, 448 from the walker's.
    assert ids(select(PEOPLE, TrackPolicy(min_track_frames=1, person="most-central"))) == ["giant"]


def test_refusals_name_the_setting() -> None:
    with pytest.raises(KeypointFileError, match=r"^no track has 50 detected frames \(min_track_frames\); the longest"):
        select(PEOPLE, TrackPolicy(min_track_frames=50))
    with pytest.raises(KeypointFileError, match=r"^person: no track 'glimpse' among those kept \(walker, giant\)"):
        select(PEOPLE, TrackPolicy(person="glimpse"))
    for bad, words in ((TrackPolicy(min_track_frames=0), "min_track_frames must be at least 1"),
                       (TrackPolicy(max_gap_frames=-1), "max_gap_frames must be 0 or more"),
                       (TrackPolicy(person=""), "person must be one of")):  # fmt: skip
        with pytest.raises(KeypointFileError, match=words):
            bad.check()
