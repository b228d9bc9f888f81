"""Detections -> tracks (service.formats.tracking): ids duplicated, nested, missing and swapped mid-sequence.

Person p's joint j of frame f is at (200 p + 2 f + 3 j, 400 + 10 j + f) (tests/unit/formats/test_detectors.py's
rule): people 0 and 1 stand 200 pixels (2.3 box sizes) apart and move 2 pixels a frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.formats import parse
from service.formats.detections import Detection, detection
from service.formats.tracking import GATE, MAX_GAP, build_tracks, cost
from tests.unit.formats.test_detectors import missing, rule


def alphapose(p: int, f: int, idx: Any = None, *, shift: float = 0.0, score: float | None = None) -> dict[str, Any]:
    kp = rule(p, range(f, f + 1))[0].astype(np.float64)
    kp[:, :2] += shift
    if score is not None:
        kp[:, 2] = score
    det: dict[str, Any] = {"image_id": f"{f}.jpg", "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 3.0}
    return det if idx is None else det | {"idx": idx}


def test_ids_duplicated_nested_missing_and_swapped() -> None:
    dets = [
        alphapose(0, 0, 1), alphapose(1, 0, [[2.0], [2.0]]),  # nested: AlphaPose's [[id], [id]]
        alphapose(1, 1, [2]), alphapose(0, 1, [[1.0]]),
        # A second, worse detection with id 2 (lower scores, 500 pixels off): 2 stays with person 1.
        alphapose(0, 2, 1), alphapose(1, 2, 2, shift=500.0, score=0.2), alphapose(1, 2, 2),
        # The tracker swaps the ids from frame 3 on: each detection fails the gate against its id's track, and
        # assignment puts it back with the person it continues.
        alphapose(0, 3, 2), alphapose(1, 3, 1),
        alphapose(0, 4, 2), alphapose(1, 4),  # person 1 without an id
        alphapose(1, 5, [[1.0], [2.0]]), alphapose(0, 5, 2),  # ids that name no one person: none
    ]  # fmt: skip
    data = parse(dets)
    assert [(t.id, t.start, len(t.keypoints)) for t in data.tracks] == [("1", 0, 6), ("2", 0, 6), ("0", 2, 1)]
    np.testing.assert_array_equal(data.tracks[0].keypoints, rule(0, range(6)))
    np.testing.assert_array_equal(data.tracks[1].keypoints, rule(1, range(6)))
    duplicate = rule(1, range(2, 3))
    duplicate[..., :2] += 500.0
    duplicate[..., 2] = 0.2
    np.testing.assert_array_equal(data.tracks[2].keypoints, duplicate)
    assert all(t.detected.all() for t in data.tracks)
    assert _same(parse(dets).tracks, data.tracks)  # deterministic


def _same(a: Any, b: Any) -> bool:
    return all(x.id == y.id and np.array_equal(x.keypoints, y.keypoints) for x, y in zip(a, b, strict=True))


def test_without_ids_people_are_followed_by_position() -> None:
    # Person 0 is missing in frame 1; person 2 appears in frame 2; the order within frames changes.
    dets = [
        alphapose(1, 0), alphapose(0, 0),
        alphapose(1, 1),
        alphapose(2, 2), alphapose(0, 2), alphapose(1, 2),
    ]  # fmt: skip
    data = parse(dets)
    assert [(t.id, t.start, t.detected.tolist()) for t in data.tracks] == [
        ("0", 0, [True, True, True]),
        ("1", 0, [True, False, True]),
        ("2", 2, [True]),
    ]
    np.testing.assert_array_equal(data.tracks[0].keypoints, rule(1, range(3)))
    np.testing.assert_array_equal(data.tracks[1].keypoints, missing(rule(0, range(3)), [1]))
    np.testing.assert_array_equal(data.tracks[2].keypoints, rule(2, range(2, 3)))


def person(p: int, f: int, id: str | None, order: int) -> Detection:
    kp = rule(p, range(f, f + 1))[0]
    return detection(f, id, kp[:, :2], kp[:, 2], f"[{order}]", order=order)


def test_a_long_gap_ends_a_track_and_its_id_starts_another() -> None:
    last = MAX_GAP + 2  # frames 1 .. MAX_GAP + 1 without a detection: one more than a track waits
    found = [person(0, 0, "7", 0), person(0, last, "7", 1), person(0, last + 1, "7", 2), person(1, 1, None, 3)]
    tracks = build_tracks(found, last + 2)
    assert [(t.id, t.start, len(t.keypoints)) for t in tracks] == [("7", 0, 1), ("0", 1, 1), ("7-2", last, 2)]
    # Within MAX_GAP the track goes on, the frames between filled: interpolated, score 0, not detected.
    found = [person(0, 0, None, 0), person(0, 4, None, 1)]
    (track,) = build_tracks(found, 5)
    np.testing.assert_array_equal(track.keypoints, missing(rule(0, range(5)), [1, 2, 3]))
    assert track.detected.tolist() == [True, False, False, False, True]
    # The boundary: a gap of exactly max_gap frames is filled, one more ends the track; 0 keeps consecutive frames.
    for gap, pieces in ((3, 1), (4, 2)):
        found = [person(0, 0, "7", 0), person(0, gap + 1, "7", 1)]
        assert len(build_tracks(found, gap + 2, max_gap=3)) == pieces, gap
    found = [person(0, f, "7", f) for f in range(4)]
    assert [len(t.keypoints) for t in build_tracks(found, 4, max_gap=0)] == [4]


def test_the_cost_and_its_gate() -> None:
    a, b = person(0, 0, None, 0), person(0, 1, None, 1)
    # The joints' box is 48 x 160 pixels; each joint moves (2, 1) pixels.
    assert cost(a, b) == pytest.approx(np.sqrt(5) / np.sqrt(48 * 160))
    assert cost(a, person(1, 0, None, 2)) > GATE  # the other person
    hidden = detection(0, None, a.xy, np.zeros(17), "[3]")
    assert cost(a, hidden) == np.inf  # no joint seen by both
