"""Keypoint file readers on small hand-made files of each layout (tests/fixtures), with exact expected arrays.

The fixtures put person p's joint j of frame f at (100 p + 10 f + j, 500 + 2 j + f) with score
0.5 + 0.01 j + 0.1 p, so every expected value below is computed from that rule, not from the reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from service.formats import KeypointFileError, detect, parse, read_keypoints
from tests.data import FIXTURES


def rule(p: int, frames: range, joints: int) -> npt.NDArray[np.float32]:
    f, j = np.meshgrid(np.asarray(frames), np.arange(joints), indexing="ij")
    x, y = 100.0 * p + 10 * f + j, 500.0 + 2 * j + f
    s = np.broadcast_to(np.round(0.5 + 0.01 * np.arange(joints) + 0.1 * p, 2), f.shape)
    out: npt.NDArray[np.float32] = np.stack([x, y, s], axis=-1).astype(np.float32)
    return out


def test_mmpose_demo_predictions_two_persons_by_instance_index() -> None:
    data = read_keypoints(FIXTURES / "mmpose_predictions.json")
    assert (data.source, data.layout, data.frames, data.single) == ("mmpose", "coco", 4, False)
    assert data.frame_ids == (1, 2, 3, 4)  # the demo counts video frames from 1
    assert [(t.id, t.start, t.keypoints.shape) for t in data.tracks] == [("0", 0, (4, 17, 3)), ("1", 0, (4, 17, 3))]
    first = rule(0, range(4), 17)
    first[0, 0, 2] = 1.07  # RTMPose's score as the file has it: the service's one rule takes it as 1
    np.testing.assert_array_equal(data.tracks[0].keypoints, first)
    # Person 1 is missing from the third frame: score 0, coordinates interpolated (the rule is linear in f).
    second = rule(1, range(4), 17)
    second[2, :, 2] = 0.0
    np.testing.assert_array_equal(data.tracks[1].keypoints, second)
    assert data.tracks[1].keypoints[2, 3].tolist() == [123.0, 508.0, 0.0]


def test_mmpose_inferencer_list_with_track_ids() -> None:
    def person(p: int, f: int) -> dict[str, Any]:
        kp = rule(p, range(f, f + 1), 17)[0]
        return {"keypoints": kp[:, :2].tolist(), "keypoint_scores": kp[:, 2].tolist(), "track_id": 7 + p}

    # The inferencer's layout: [{frame_id, instances}] from frame 0; track 8 comes first in frame 1.
    frames = [
        {"frame_id": 0, "instances": [person(0, 0)]},
        {"frame_id": 1, "instances": [person(1, 1), person(0, 1)]},
    ]
    assert detect(frames) == "mmpose"
    data = parse(frames)
    assert [(t.id, t.start) for t in data.tracks] == [("7", 0), ("8", 1)]
    np.testing.assert_array_equal(data.tracks[0].keypoints, rule(0, range(2), 17))
    np.testing.assert_array_equal(data.tracks[1].keypoints, rule(1, range(1, 2), 17))


def test_alphapose_results_two_tracked_persons_halpe26() -> None:
    data = read_keypoints(FIXTURES / "alphapose_results.json")
    assert (data.source, data.layout, data.frames) == ("alphapose", "halpe26", 3)
    assert data.frame_ids == ("0.jpg", "1.jpg", "2.jpg")
    # Grouped by `idx` (the tracker's id, written as [id]), whatever the order within a frame.
    assert [(t.id, t.start, t.keypoints.shape) for t in data.tracks] == [("1", 0, (3, 26, 3)), ("2", 1, (2, 26, 3))]
    np.testing.assert_array_equal(data.tracks[0].keypoints, rule(1, range(3), 26))
    np.testing.assert_array_equal(data.tracks[1].keypoints, rule(2, range(1, 3), 26))
    assert data.tracks[1].keypoints[0, 25].tolist() == [235.0, 551.0, pytest.approx(0.95)]


def test_alphapose_without_tracking_is_one_track_per_detection_index() -> None:
    flat = rule(0, range(1), 17)[0].ravel().tolist()
    dets = [{"image_id": f"{f}.jpg", "category_id": 1, "keypoints": flat, "score": 2.5} for f in (0, 0, 1)]
    data = parse(dets)
    assert (data.layout, data.frames) == ("coco", 2)
    assert [(t.id, t.start, len(t.keypoints)) for t in data.tracks] == [("0", 0, 2), ("1", 0, 1)]


def test_our_json_single_sequence_with_options() -> None:
    data = read_keypoints(FIXTURES / "example_request.json")
    body = json.loads((FIXTURES / "example_request.json").read_text())
    assert (data.source, data.layout, data.single, data.frames) == ("motionlift", "coco", True, 2)
    assert data.options == {"image_size": [1920, 1080]}
    np.testing.assert_array_equal(data.tracks[0].keypoints, np.asarray(body["keypoints"], np.float32))


def test_our_json_tracks_and_a_forced_layout() -> None:
    body = {"tracks": [{"id": "a", "keypoints": [[[1, 2]] * 17]}, {"keypoints": [[[3, 4, 0.5]] * 17] * 2}]}
    data = parse(body, layout="h36m")
    assert (data.layout, data.single) == ("h36m", False)
    assert [(t.id, t.keypoints.shape) for t in data.tracks] == [("a", (1, 17, 2)), ("1", (2, 17, 3))]


def test_whole_body_sets_keep_their_body_joints() -> None:
    kp = rule(0, range(1), 133)[0]
    data = parse(
        [{"frame_id": 0, "instances": [{"keypoints": kp[:, :2].tolist(), "keypoint_scores": kp[:, 2].tolist()}]}]
    )
    assert data.layout == "coco"
    np.testing.assert_array_equal(data.tracks[0].keypoints[0], kp[:17])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a JSON file"),
        ("[]", "empty list"),
        ('{"frames": []}', "unknown layout"),
        ('{"keypoints": [[[1, 2]]], "format": "openpose"}', "format: 'openpose' is not one of"),
        ('{"keypoints": [[[1, 2]], [[1]]], "format": "coco"}', "keypoints: expected frames x joints"),
        ('[{"image_id": "0.jpg", "keypoints": [1, 2, 0.5, 3]}]', "[0].keypoints: expected [x, y, score] * joints"),
        ('[{"image_id": 0, "keypoints": [1, 2, 0.5]}]', "1 joints per person; expected 17 (COCO)"),
        ('[{"frame_id": 0, "instances": [{"keypoints": [[1, 2, 3]]}]}]', "[0].instances[0].keypoints: expected"),
        ('[{"frame_id": 0, "instances": []}]', "no person is detected"),
    ],
)
def test_unreadable_files_say_where_and_why(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "in.json"
    path.write_text(content)
    with pytest.raises(KeypointFileError) as info:
        read_keypoints(path)
    assert str(info.value).startswith(f"{path}: "), info.value
    assert message in str(info.value)


def test_a_missing_file_and_a_layout_that_does_not_fit(tmp_path: Path) -> None:
    with pytest.raises(KeypointFileError, match="cannot read it: No such file"):
        read_keypoints(tmp_path / "nope.json")
    with pytest.raises(KeypointFileError, match="17 joints per person cannot be format 'halpe26'"):
        read_keypoints(FIXTURES / "mmpose_predictions.json", layout="halpe26")
    with pytest.raises(KeypointFileError, match="unknown input format 'vicon'"):
        read_keypoints(FIXTURES / "mmpose_predictions.json", source="vicon")  # type: ignore[arg-type]
