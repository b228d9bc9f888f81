"""Every bad input through a real uvicorn server: a clear 4xx naming the field, never a 500 or a hang."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.data import walk

GOOD: dict[str, Any] = {"keypoints": walk(5), "format": "coco", "image_size": [1920, 1080]}


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["request_id"] == r.headers["x-request-id"]
    assert len(body["request_id"]) >= 16
    return dict(body)


def frame(joints: int, channels: int, value: float = 500.0) -> list[list[float]]:
    return [[value, value, 0.5][:channels] + [0.5] * max(0, channels - 3) for _ in range(joints)]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"keypoints": [frame(16, 3)]}, "keypoints[0]", "format 'coco' has 17 joints per frame, got 16"),
        (
            {"keypoints": [frame(17, 4)]},
            "keypoints[0][0]",
            "each joint needs 2 (x, y) or 3 (x, y, score) numbers, got 4",
        ),
        (
            {"keypoints": [frame(17, 1)]},
            "keypoints[0][0]",
            "each joint needs 2 (x, y) or 3 (x, y, score) numbers, got 1",
        ),
        (
            {"keypoints": [frame(17, 3), frame(16, 3)]},
            "keypoints[1]",
            "frame has 16 joints but frame 0 has 17; every frame needs the same count",
        ),
        ({"keypoints": []}, "keypoints", "the sequence is empty; send at least one frame"),
        ({"keypoints": [[]]}, "keypoints[0]", "format 'coco' has 17 joints per frame, got 0"),
        ({"keypoints": [frame(17, 3)] * 2001}, "keypoints", "2001 frames is more than the limit of 2000"),
        (
            {"keypoints": [[*frame(17, 3)[:3], [1.0, 2.0, -0.1], *frame(13, 3)]]},
            "keypoints[0][3][2]",
            "score -0.1 is negative; a score is a confidence in [0, 1] (0 marks a missing joint, above 1 counts as 1)",
        ),
        ({"format": "openpose"}, "format", "unknown keypoint format 'openpose'; expected one of h36m, coco, halpe26"),
        ({"format": None}, "format", "set the keypoint format: one of h36m, coco, halpe26"),
        ({"flip": "yes"}, "flip", "must be true or false, got 'yes'"),
        ({"overlap": 2.5}, "overlap", "must be an integer, got 2.5"),
        ({"image_size": [1920]}, "image_size", "must be [width, height], two numbers, got [1920]"),
        (
            {"image_size": [1920, 0]},
            "image_size",
            "image_size [width, height] must be between 1 and 100000 pixels, got [1920.0, 0.0]",
        ),
        (
            {"image_size": None, "pixels": True},
            "pixels",
            "pixel output needs image_size and pixel normalization (the official --pixel mode)",
        ),
        (
            {"image_size": None, "normalization": "pixel"},
            "image_size",
            "pixel normalization needs image_size [width, height]",
        ),
        ({"overlap": 243}, "overlap", "overlap must be between 0 and 242 frames (window 243), got 243"),
        (
            {"tracks": [{"keypoints": walk(3)}]},
            "body",
            "send exactly one of keypoints (one sequence) or tracks (several)",
        ),
        (
            {"keypoints": None},
            "body",
            "send exactly one of keypoints (one sequence) or tracks (several)",
        ),
        (
            {"colour": "red"},
            "colour",
            "unknown field; expected one of keypoints, tracks, format, image_size, normalization, flip, rootrel, "
            "pixels, overlap, min_track_frames, max_gap_frames, person, smoothing, smoothing_window, smoothing_cutoff, "
            "smoothing_beta, fps, subject_height_m, root, focal_length_px",
        ),
        ({"keypoints": "abc"}, "keypoints", "expected a list of frames"),
        ({"keypoints": [[["a", 1.0]] * 17]}, "keypoints[0][0][0]", "coordinates must be numbers"),
        ({"keypoints": [[[True, 1.0]] * 17]}, "keypoints[0][0][0]", "coordinates must be numbers"),
        ({"keypoints": [[[1.0, None]] * 17]}, "keypoints[0][0][1]", "coordinates must be numbers"),
        ({"keypoints": [[[1e39, 1.0]] * 17]}, "keypoints[0][0]", "a value is NaN or infinite"),
    ],
)
def test_bad_input_is_422_naming_field_and_problem(
    rest_url: str, change: dict[str, Any], field: str, message: str
) -> None:
    body = error(httpx.post(f"{rest_url}/lift", json={**GOOD, **change}), 422)
    assert (body["code"], body["field"], body["message"]) == ("invalid_input", field, message)


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values_are_422(rest_url: str, bad: str) -> None:
    rows = ",".join(["[1,2,0.5]"] * 16 + [f"[1,{bad},0.5]"])
    content = '{"format": "coco", "image_size": [1920, 1080], "keypoints": [[' + rows + "]]}"
    r = httpx.post(f"{rest_url}/lift", content=content, headers={"content-type": "application/json"})
    body = error(r, 400)
    assert (body["field"], body["message"]) == (
        "body",
        f"malformed JSON: NaN and Infinity are not JSON numbers (at byte {content.index(bad)}); every coordinate "
        "must be finite",
    )


def test_tracks_name_the_track_at_fault(rest_url: str) -> None:
    tracks = {"tracks": [{"keypoints": walk(3)}, {"id": "b", "keypoints": [frame(17, 3), frame(17, 5)]}]}
    body = error(httpx.post(f"{rest_url}/lift", json={**GOOD, "keypoints": None, **tracks}), 422)
    assert body["field"] == "tracks[1].keypoints[1][0]"


def test_crop_mode_needs_a_box(rest_url: str) -> None:
    still = [[[100.0, 100.0, 1.0]] * 17] * 3  # every joint at one point: no box to normalise by
    body = error(httpx.post(f"{rest_url}/lift", json={"keypoints": still, "format": "h36m"}), 422)
    assert body["field"] == "keypoints"
    assert "non-zero box" in body["message"]


def test_malformed_json_is_400(rest_url: str) -> None:
    r = httpx.post(f"{rest_url}/lift", content=b'{"keypoints": [[[1, 2]', headers={"content-type": "application/json"})
    body = error(r, 400)
    assert (body["code"], body["field"]) == ("bad_request", "body")
    assert body["message"].startswith("malformed JSON")


def test_oversize_body_is_413_before_it_is_read(rest_url: str) -> None:
    r = httpx.post(
        f"{rest_url}/lift", content=b"x" * (4 * 1024 * 1024 + 1), headers={"content-type": "application/json"}
    )
    body = error(r, 413)
    assert (body["code"], body["field"]) == ("payload_too_large", "body")
    assert body["message"] == "the request body is over the limit of 4194304 bytes"


def test_oversize_chunked_body_is_413(rest_url: str) -> None:
    def chunks() -> Any:
        for _ in range(5):
            yield b" " * (1024 * 1024)

    r = httpx.post(f"{rest_url}/lift", content=chunks(), headers={"content-type": "application/json"})
    assert error(r, 413)["code"] == "payload_too_large"


def test_unknown_route_is_404(rest_url: str) -> None:
    assert httpx.post(f"{rest_url}/lifts", json=GOOD).status_code == 404
