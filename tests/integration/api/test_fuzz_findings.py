"""Regression tests for what the OpenAPI fuzzer (test_openapi.py) found, through the session's real service: each
body is one the document calls valid (answered 200) or invalid (answered 4xx in the envelope), and was not."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from tests.data import walk

GOOD: dict[str, Any] = {"keypoints": walk(3), "format": "coco", "image_size": [1920, 1080]}


def lift(rest_url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{rest_url}/lift", json=body, timeout=60)


SHAPE = "expected frames x joints x (2 or 3) numbers, got an array of shape"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"keypoints": [[1.0, 2.0]]}, "keypoints", f"{SHAPE} [1, 2]"),
        ({"keypoints": [1.0, 2.0]}, "keypoints", f"{SHAPE} [2]"),
        ({"keypoints": None, "tracks": [{"keypoints": [[0]]}]}, "tracks[0].keypoints", f"{SHAPE} [1, 1]"),
    ],
)
def test_numbers_nested_too_shallow_are_422_not_500(
    rest_url: str, change: dict[str, Any], field: str, message: str
) -> None:
    # The check for booleans walked every "frame" as a list of joints: a number there raised TypeError (a 500).
    r = lift(rest_url, {**GOOD, **change})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_input", field) and error["message"].startswith(message)


def test_a_score_beyond_float32_counts_as_one(rest_url: str) -> None:
    # Scores above 1 count as 1, however large: 1e39 became an infinite float32 and was refused as "NaN or
    # infinite" before the rule applied.
    huge, one = walk(3), walk(3)
    huge[1][4][2], one[1][4][2] = 1e39, 1.0
    answers = [lift(rest_url, {**GOOD, "keypoints": k}) for k in (huge, one)]
    assert [r.status_code for r in answers] == [200, 200], answers[0].text
    np.testing.assert_array_equal(np.asarray(answers[0].json()["joints3d"]), np.asarray(answers[1].json()["joints3d"]))


def test_integers_written_with_a_fraction_of_zero_are_integers(rest_url: str) -> None:
    # JSON has one number type and JSON Schema's `integer` includes 7.0: a track id 7.0 is the id 7 (echoed as 7),
    # an overlap of 3.0 is 3. Both were refused as not integers.
    body = {"tracks": [{"id": 7.0, "keypoints": walk(3)}], "format": "coco", "image_size": [1920, 1080]}
    r = lift(rest_url, {**body, "overlap": 3.0})
    assert r.status_code == 200, r.text
    assert [(t["id"], type(t["id"])) for t in r.json()["tracks"]] == [(7, int)]
    duplicate = {**body, "tracks": [{"id": 7.0, "keypoints": walk(3)}, {"id": "7", "keypoints": walk(3)}]}
    assert lift(rest_url, duplicate).json()["error"]["field"] == "tracks[1].id"  # the same id as "7"
    assert lift(rest_url, {**GOOD, "overlap": 3.5}).json()["error"]["message"] == "must be an integer, got 3.5"
