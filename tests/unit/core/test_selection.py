"""The track policy (service/core/selection.py) on hand-made tracks: who is kept, where tracks are cut, which
frames count as detected, and the errors' words."""

from __future__ import annotations

import numpy as np
import pytest

from service.core.options import LiftOptions
from service.core.selection import detected, select
from service.core.tracks import Track
from service.errors import InvalidInput


def track(tid: str, frames: int, *, at: tuple[float, float], size: float, missing: int = 0, start: int = 0) -> Track:
    """``frames`` frames of a diagonal of 17 joints of side ``size`` around ``at``; the last ``missing`` frames
    have every score 0 (not detected)."""
    grid = np.linspace(-size / 2, size / 2, 17, dtype=np.float32)
    pose = np.stack([at[0] + grid, at[1] + grid[::-1], np.full(17, 0.9, np.float32)], axis=-1)
    keypoints = np.repeat(pose[None], frames, axis=0)
    if missing:
        keypoints[-missing:, :, 2] = 0.0
    return Track(tid, keypoints, start=start)


PEOPLE = [
    track("walker", 40, at=(900.0, 500.0), size=100.0),  # 40 detected, small, central
    track("giant", 35, at=(200.0, 300.0), size=400.0, missing=3),  # 32 detected, large, off-centre
    track("glimpse", 5, at=(950.0, 520.0), size=50.0),  # 5 detected: a passer-by
]


def ids(**policy: object) -> list[str]:
    return [t.id for t in select(PEOPLE, LiftOptions.from_mapping({"format": "coco", **policy}))]


def test_nothing_given_lifts_every_track_as_sent() -> None:
    assert select(PEOPLE, LiftOptions("coco")) == PEOPLE
    assert ids(person="all") == ["walker", "giant", "glimpse"]


def test_short_tracks_are_dropped_and_people_picked() -> None:
    assert ids(min_track_frames=30) == ["walker", "giant"]
    assert ids(min_track_frames=33) == ["walker"]  # giant has 32 detected frames
    assert ids(person="longest") == ["walker"]
    assert ids(person="largest") == ["giant"]
    assert ids(person="most-central", image_size=[1920, 1080]) == ["glimpse"]  # (950, 520): 22 px from the centre
    assert ids(person="most-central", image_size=[1920, 1080], min_track_frames=30) == ["walker"]
    assert ids(person="glimpse") == ["glimpse"]
    # Without an image size the centre is that of all the tracks' joints (x 0..975, y 100..550): (487.5, 325),
    # 289 px from the giant's centre, 448 from the walker's.
    assert ids(person="most-central", min_track_frames=30) == ["giant"]


def test_refusals_name_the_setting() -> None:
    with pytest.raises(InvalidInput, match=r"^no track has 50 detected frames; the longest has 40") as caught:
        ids(min_track_frames=50)
    assert caught.value.field == "min_track_frames"
    with pytest.raises(InvalidInput, match=r"^no track 'glimpse' among those kept \(walker, giant\)") as caught:
        ids(min_track_frames=30, person="glimpse")
    assert caught.value.field == "person"
    for name, value, words in (("min_track_frames", 0, "between 1 and 1000000"),
                               ("max_gap_frames", -1, "between 0 and 1000000"),
                               ("person", "", "a track id of 1 to 128 characters")):  # fmt: skip
        with pytest.raises(InvalidInput, match=words) as caught:
            LiftOptions.from_mapping({"format": "coco", name: value}).check(window=27)
        assert caught.value.field == name


def test_long_gaps_cut_a_track_and_undetected_ends_are_trimmed() -> None:
    # Frames 0-1 undetected, 2-9 detected, 10-14 undetected (5), 15-19 detected, 20-21 undetected (2), 22-24
    # detected, 25-26 undetected; the track starts at video frame 100.
    base = track("p", 27, at=(500.0, 500.0), size=100.0, start=100)
    keypoints = base.keypoints.copy()
    keypoints[[0, 1, *range(10, 15), 20, 21, 25, 26], :, 2] = 0.0
    sent = Track("p", keypoints, start=100)
    pieces = select([sent], LiftOptions("coco", max_gap_frames=4))
    assert [(t.id, t.start, len(t.keypoints)) for t in pieces] == [("p", 102, 8), ("p-2", 115, 10)]
    assert list(np.flatnonzero(~detected(pieces[1].keypoints))) == [5, 6]  # the 2-frame gap stays, filled
    assert [(t.id, t.start, len(t.keypoints)) for t in select([sent], LiftOptions("coco", max_gap_frames=5))] == [
        ("p", 102, 23)
    ]


def test_a_frame_is_detected_unless_every_score_is_zero() -> None:
    pose = np.ones((3, 17, 3), np.float32)
    pose[1, :, 2] = 0.0
    pose[2, 1:, 2] = 0.0  # one joint seen is a detection
    assert detected(pose).tolist() == [True, False, True]
    assert detected(pose[..., :2]).tolist() == [True, True, True]  # no scores: every frame
