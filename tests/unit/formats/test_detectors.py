"""Each detector's reader on a small file in that detector's format (tests/fixtures/detectors), exact arrays.

The fixtures put person p's joint j (COCO-17 / Halpe-26 order) of frame f at (200 p + 2 f + 3 j, 400 + 10 j + f)
with score 0.5 + 0.01 j + 0.1 p (tests/fixtures/README.md); every expected value is computed from that rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from service.formats import KeypointFileError, detect, parse, read_keypoints
from tests.data import FIXTURES

DETECTORS = FIXTURES / "detectors"


def rule(p: int, frames: range, joints: int = 17) -> npt.NDArray[np.float32]:
    f, j = np.meshgrid(np.asarray(frames), np.arange(joints), indexing="ij")
    x, y = 200.0 * p + 2 * f + 3 * j, 400.0 + 10 * j + f
    s = np.broadcast_to(np.round(0.5 + 0.01 * np.arange(joints) + 0.1 * p, 2), f.shape)
    out: npt.NDArray[np.float32] = np.stack([x, y, s], axis=-1).astype(np.float32)
    return out


def missing(track: npt.NDArray[np.float32], frames: list[int]) -> npt.NDArray[np.float32]:
    """``track`` with score 0 in ``frames`` (the rule is linear in f, so interpolation gives its coordinates)."""
    out = track.copy()
    out[frames, :, 2] = 0.0
    return out


def test_alphapose_tracked_halpe26_ids_of_every_form_and_a_duplicate() -> None:
    data = read_keypoints(DETECTORS / "alphapose_halpe26_tracked.json")
    assert (data.source, data.layout, data.frames) == ("alphapose", "halpe26", 4)
    assert data.frame_ids == ("0.jpg", "1.jpg", "2.jpg", "3.jpg")
    # idx 1 written as 1, [[1.0], [1.0]], [1] and [[1.0]] is one track; the tiny second detection with idx [1]
    # in frame 1 loses to the better one and becomes a track of its own, named by the first free number.
    assert [(t.id, t.start, len(t.keypoints)) for t in data.tracks] == [("1", 0, 4), ("2", 0, 4), ("0", 1, 1)]
    np.testing.assert_array_equal(data.tracks[0].keypoints, rule(1, range(4), 26))
    assert data.tracks[0].detected.tolist() == [True] * 4
    np.testing.assert_array_equal(data.tracks[1].keypoints, missing(rule(2, range(4), 26), [2]))
    assert data.tracks[1].detected.tolist() == [True, True, False, True]
    tiny = np.stack([600.0 + np.arange(26), 300.0 + np.arange(26), np.full(26, 0.2)], axis=-1)
    np.testing.assert_array_equal(data.tracks[2].keypoints[0], tiny.astype(np.float32))


def test_coco_results_in_image_id_order_tracked_by_position() -> None:
    data = read_keypoints(DETECTORS / "coco_results.json")
    assert (data.source, data.layout, data.frames, data.frame_ids) == ("coco", "coco", 3, (7, 8, 9))
    # Listed as images 9, 7, 8 and person 1 first in image 8: position, not order, makes the tracks.
    assert [(t.id, t.start) for t in data.tracks] == [("0", 0), ("1", 0)]
    np.testing.assert_array_equal(data.tracks[0].keypoints, rule(0, range(3)))
    np.testing.assert_array_equal(data.tracks[1].keypoints, rule(1, range(3)))


def test_openpose_folder_body25_to_coco17() -> None:
    data = read_keypoints(DETECTORS / "openpose")
    assert (data.source, data.layout, data.frames) == ("openpose", "coco", 3)
    assert data.frame_ids == tuple(f"clip_{f:012d}_keypoints.json" for f in range(3))
    assert [(t.id, t.start) for t in data.tracks] == [("0", 0), ("1", 0)]  # person_id [-1]: no id
    np.testing.assert_array_equal(data.tracks[0].keypoints, rule(0, range(3)))
    second = rule(1, range(3))
    second[2, 9] = 0.0  # the left wrist OpenPose did not find: written 0, 0, 0, kept as it is (score 0: missing)
    np.testing.assert_array_equal(data.tracks[1].keypoints, second)
    # One frame's file read as JSON is detected as OpenPose too.
    one = json.loads((DETECTORS / "openpose" / "clip_000000000000_keypoints.json").read_text())
    assert detect(one) == "openpose" and parse(one).frames == 1


def test_mediapipe_landmarks_in_pixels_with_the_files_image_size() -> None:
    data = read_keypoints(DETECTORS / "mediapipe_pose.json")
    assert (data.source, data.layout, data.frames) == ("mediapipe", "coco", 4)
    assert [(t.id, t.start) for t in data.tracks] == [("0", 0)]
    np.testing.assert_array_equal(data.tracks[0].keypoints, missing(rule(0, range(4)), [1]))
    assert data.tracks[0].detected.tolist() == [True, False, True, True]


def test_mediapipe_needs_an_image_size(tmp_path: Path) -> None:
    doc = json.loads((DETECTORS / "mediapipe_pose.json").read_text())
    frames = doc["frames"]
    with pytest.raises(KeypointFileError, match=r"image_size: MediaPipe landmarks are fractions"):
        parse(frames)
    data = parse(frames, image_size=(2048, 1024))
    np.testing.assert_array_equal(data.tracks[0].keypoints, missing(rule(0, range(4)), [1]))
    path = tmp_path / "frames.json"
    path.write_text(json.dumps(frames))
    assert read_keypoints(path, image_size=(1024, 512)).tracks[0].keypoints[0, 1].tolist() == [
        pytest.approx(1.5),
        pytest.approx(205.0),
        pytest.approx(0.51),
    ]


def test_mmpose_inferencer_predictions() -> None:
    data = read_keypoints(DETECTORS / "mmpose_inferencer.json")
    assert (data.source, data.layout, data.frames, data.frame_ids) == ("mmpose", "coco", 2, (0, 1))
    assert [(t.id, t.start) for t in data.tracks] == [("0", 0), ("1", 1)]
    np.testing.assert_array_equal(data.tracks[0].keypoints, rule(0, range(2)))
    np.testing.assert_array_equal(data.tracks[1].keypoints, rule(1, range(1, 2)))


def test_yolo_track_results_by_track_id() -> None:
    data = read_keypoints(DETECTORS / "yolo_pose_track.json")
    assert (data.source, data.layout, data.frames) == ("yolo", "coco", 3)
    assert [(t.id, t.start) for t in data.tracks] == [("4", 0), ("9", 0)]
    np.testing.assert_array_equal(data.tracks[0].keypoints, rule(0, range(3)))
    np.testing.assert_array_equal(data.tracks[1].keypoints, missing(rule(1, range(3)), [1]))
    # One image's summary() alone is one frame.
    one = json.loads((DETECTORS / "yolo_pose_track.json").read_text())[0]
    assert detect(one) == "yolo" and parse(one).frames == 1


def test_a_nan_score_names_the_element() -> None:
    doc = json.loads((DETECTORS / "yolo_pose_track.json").read_text())
    doc[1][0]["keypoints"]["visible"][5] = float("nan")
    with pytest.raises(KeypointFileError, match=r"^\[1\]\[0\]\.scores: a value is NaN \(element \[5\]\)"):
        parse(doc)
    flat = [1.0, 2.0, float("nan")] * 17
    with pytest.raises(KeypointFileError, match=r"^\[0\]\.scores: a value is NaN \(element \[0\]\)"):
        parse([{"image_id": "0.jpg", "keypoints": flat, "idx": 1}])


def test_an_unknown_shape_lists_every_layout() -> None:
    with pytest.raises(KeypointFileError) as info:
        detect({"frames": 3})
    for name in ("motionlift", "mmpose", "alphapose", "coco", "openpose", "mediapipe", "yolo"):
        assert f"{name}: " in str(info.value)


def test_openpose_coco18_and_a_joint_count_it_does_not_know() -> None:
    table = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)
    kp = [0.0] * 54
    want = rule(0, range(1))[0]
    for j, k in enumerate(table):
        kp[3 * k : 3 * k + 3] = want[j].tolist()
    data = parse({"people": [{"person_id": [-1], "pose_keypoints_2d": kp}]})
    np.testing.assert_array_equal(data.tracks[0].keypoints[0], want)
    with pytest.raises(KeypointFileError, match=r"\[0\]\.people\[0\]\.pose_keypoints_2d: 15 joints"):
        parse({"people": [{"pose_keypoints_2d": [1.0, 2.0, 0.5] * 15}]}, source="openpose")
