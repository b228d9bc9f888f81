"""``motionlift lift`` end to end, in-process (``service.cli.main``) against the session's real service."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.cli import main
from service.client import MotionLiftClient
from service.formats import read_keypoints
from tests.conftest import Served
from tests.data import FIXTURES


def test_mmpose_file_over_rest_to_json(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    source = FIXTURES / "mmpose_predictions.json"
    flags = ["--image-size", "1920", "1080", "--min-track-frames", "1", "--out", str(out)]
    assert main(["lift", str(source), "--url", served.rest_url, *flags]) == 0
    doc = json.loads(out.read_text())
    assert doc["input"] == {"source": "mmpose", "format": "coco", "frames": 4}
    assert doc["frame_ids"] == [1, 2, 3, 4] and doc["transport"] == "rest"
    assert [(t["id"], t["start"], t["frames"]) for t in doc["tracks"]] == [("0", 0, 4), ("1", 0, 4)]
    assert len(doc["joint_names"]) == 17 and doc["latency_ms"]["round_trip"] >= doc["latency_ms"]["total"]
    data = read_keypoints(source)
    with MotionLiftClient(served.rest_url) as client:
        want = client.lift(tracks={t.id: t.keypoints for t in data.tracks}, format="coco", image_size=(1920, 1080))
    for got, track in zip(doc["tracks"], want.tracks, strict=True):
        np.testing.assert_array_equal(np.asarray(got["joints3d"], np.float32), track.joints3d)
        assert track.joints3d_px is not None
        np.testing.assert_array_equal(np.asarray(got["joints3d_px"], np.float32), track.joints3d_px)


def test_alphapose_file_over_grpc_to_npy(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "result.npy"
    source = FIXTURES / "alphapose_results.json"
    flags = ["--no-flip", "--rootrel", "--min-track-frames", "1", "--out", str(out)]
    assert main(["lift", str(source), "--grpc", served.grpc_target, *flags]) == 0
    joints = np.load(out)
    assert joints.shape == (2, 3, 17, 3) and joints.dtype == np.float32
    assert np.isnan(joints[1, 0]).all() and not np.isnan(joints[:, 1:]).any()  # track "2" starts at frame 1
    data = read_keypoints(source)
    with MotionLiftClient(grpc=served.grpc_target) as client:
        want = client.lift(tracks=[t.keypoints for t in data.tracks], format="halpe26", flip=False, rootrel=True)
    np.testing.assert_array_equal(joints[0], want.tracks[0].joints3d)
    np.testing.assert_array_equal(joints[1, 1:], want.tracks[1].joints3d)
    np.testing.assert_array_equal(joints[0, :, 0], 0.0)  # root-centred: the pelvis at the origin
    np.testing.assert_array_equal(joints[1, 1:, 0], 0.0)


def test_our_json_to_stdout_and_npy(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = str(FIXTURES / "example_request.json")
    assert main(["lift", source, "--url", served.rest_url]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert "lifted 1 track(s), 2 frames over rest" in captured.err
    assert doc["frames"] == 2 and np.asarray(doc["joints3d"]).shape == (2, 17, 3) and "tracks" not in doc
    assert "frame_ids" not in doc and doc["input"]["source"] == "motionlift"
    out = tmp_path / "r.npy"
    assert main(["lift", source, "--grpc", served.grpc_target, "--out", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), np.asarray(doc["joints3d"], np.float32), rtol=0, atol=5e-7)


def test_errors_are_clear(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"frames": 3}')
    assert main(["lift", str(bad), "--url", served.rest_url]) == 2
    assert capsys.readouterr().err.startswith(f"motionlift lift: {bad}: unknown layout")
    source = str(FIXTURES / "example_request.json")
    assert main(["lift", source, "--url", served.rest_url, "--overlap", "500"]) == 1
    assert "InvalidInput at overlap: overlap must be between 0 and" in capsys.readouterr().err
    assert main(["lift", source, "--url", served.rest_url, "--out", str(tmp_path / "r.csv")]) == 2
    assert "--out must end in .json, .npy or .bvh" in capsys.readouterr().err


def test_the_track_policy_picks_the_people(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """mmpose_predictions.json: person 0 in all 4 frames, person 1 missing from the third (3 detected)."""
    source = str(FIXTURES / "mmpose_predictions.json")
    # The file default wants about a second of detections; the service applies the policy and says so (exit 1).
    assert main(["lift", source, "--url", served.rest_url]) == 1
    assert capsys.readouterr().err.endswith(
        "InvalidInput at min_track_frames: no track has 30 detected frames; the longest has 4: lower "
        "min_track_frames for a short clip (a frame is detected unless all its scores are 0)\n"
    )
    kept = {}
    for flags in (["--min-track-frames", "4"], ["--min-track-frames", "1", "--person", "1"],
                  ["--min-track-frames", "1", "--person", "longest"]):  # fmt: skip
        out = tmp_path / "r.json"
        assert main(["lift", source, "--url", served.rest_url, *flags, "--out", str(out)]) == 0
        kept[" ".join(flags)] = [(t["id"], t["filled"]) for t in json.loads(out.read_text())["tracks"]]
    assert kept == {
        "--min-track-frames 4": [("0", [])],
        "--min-track-frames 1 --person 1": [("1", [2])],
        "--min-track-frames 1 --person longest": [("0", [])],
    }
    assert main(["lift", source, "--url", served.rest_url, "--min-track-frames", "1", "--person", "7"]) == 1
    assert "InvalidInput at person: no track '7' among those kept (0, 1)" in capsys.readouterr().err
    assert main(["lift", source, "--url", served.rest_url, "--max-gap-frames", "-1"]) == 2  # before any request
    assert capsys.readouterr().err.endswith("max_gap_frames must be between 0 and 1000000\n")
