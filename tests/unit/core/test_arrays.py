"""Keypoint arrays: nested lists to float32 with the first bad element named, the format checks, and the one
rule for detector scores (above 1 counts as 1, negative is refused)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.core.arrays import as_array, check_pose, check_sequence
from service.errors import InvalidInput
from tests.data import NEGATIVE


def pose(joints: int = 17, score: float = 0.5) -> list[list[float]]:
    return [[100.0 + j, 200.0 + j, score] for j in range(joints)]


def refused(call: Any) -> tuple[str | None, str]:
    with pytest.raises(InvalidInput) as info:
        call()
    return info.value.field, info.value.message


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ("abc", "k", "expected a list of frames"),
        ([], "k", "the sequence is empty; send at least one frame"),
        ([pose(), pose(16)], "k[1]", "frame has 16 joints but frame 0 has 17; every frame needs the same count"),
        ([pose(), [*pose(16), [1.0, 2.0]]], "k[1][16]", "expected [x, y] or [x, y, score] (the same in every joint)"),
        ([[*pose(16), "x"]], "k[0][16]", "expected [x, y] or [x, y, score]"),
        ([[*pose(16), ["1", 2.0, 0.5]]], "k[0][16][0]", "coordinates must be numbers"),
        ([[*pose(16), [1.0, True, 0.5]]], "k[0][16][1]", "coordinates must be numbers"),
        ([[*pose(16), [1.0, None, 0.5]]], "k[0][16][1]", "coordinates must be numbers"),
        ([[*pose(16), [10**400, 1.0, 0.5]]], "k", "a number is too large"),
        ([[[[1.0, 2.0]]]], "k", "expected frames x joints x (2 or 3) numbers, got an array of shape [1, 1, 1, 2]"),
    ],
)
def test_nested_lists_name_the_first_bad_element(value: Any, field: str, message: str) -> None:
    got_field, got_message = refused(lambda: as_array(value, ndim=3, field="k"))
    assert got_field == field and got_message.startswith(message), got_message


def test_numbers_become_float32_and_huge_ones_infinite() -> None:
    array = as_array([[[1, 2], [3, 4.5]]], ndim=3, field="k")
    assert array.dtype == np.float32 and array.tolist() == [[[1.0, 2.0], [3.0, 4.5]]]
    big = as_array([[[2**70, 1e39]]], ndim=3, field="k")  # int beyond int64; float beyond float32
    assert big[0, 0, 0] == np.float32(2**70) and np.isinf(big[0, 0, 1])
    assert refused(lambda: check_sequence(big, format="h36m", field="k", max_frames=5))[0] == "k[0]"
    assert as_array(np.zeros((4, 17, 3), np.float64), ndim=3, field="k").dtype == np.float32
    assert refused(lambda: as_array([1.0, 2.0], ndim=2, field="p")) == (
        "p",
        "expected joints x (2 or 3) numbers, got an array of shape [2]",
    )


def test_format_checks() -> None:
    good = np.asarray([pose()] * 3, np.float32)
    assert check_sequence(good, format="coco", field="k", max_frames=3) is good  # unchanged: no copy
    assert refused(lambda: check_sequence(good, format="coco", field="k", max_frames=2)) == (
        "k",
        "3 frames is more than the limit of 2",
    )
    assert refused(lambda: check_sequence(good, format="halpe26", field="k", max_frames=5)) == (
        "k[0]",
        "format 'halpe26' has 26 joints per frame, got 17",
    )
    four = np.zeros((1, 17, 4), np.float32)
    assert refused(lambda: check_sequence(four, format="h36m", field="k", max_frames=5)) == (
        "k[0][0]",
        "each joint needs 2 (x, y) or 3 (x, y, score) numbers, got 4",
    )
    nan = good.copy()
    nan[2, 5, 1] = np.nan
    assert refused(lambda: check_sequence(nan, format="coco", field="k", max_frames=5)) == (
        "k[2][5]",
        "a value is NaN or infinite",
    )
    assert refused(lambda: check_pose(nan[2], format="coco", field="p")) == ("p[5]", "a value is NaN or infinite")


def test_scores_above_one_count_as_one_and_negative_scores_are_refused() -> None:
    raw = np.asarray([pose()] * 2, np.float32)
    raw[1, 3, 2] = 1.009  # AlphaPose writes such scores
    raw[0, 0, 2] = 7.0
    checked = check_sequence(raw, format="coco", field="k", max_frames=5)
    assert checked[1, 3, 2] == 1.0 and checked[0, 0, 2] == 1.0 and float(checked.max()) == float(raw[..., :2].max())
    assert raw[1, 3, 2] == np.float32(1.009)  # the caller's array is left alone
    clipped = raw.copy()
    clipped[1, 3, 2] = clipped[0, 0, 2] = 1.0
    np.testing.assert_array_equal(checked, clipped)
    raw[1, 4, 2] = -1.5
    assert refused(lambda: check_sequence(raw, format="coco", field="k", max_frames=5)) == ("k[1][4][2]", NEGATIVE)
    assert refused(lambda: check_pose(raw[1], format="coco", field="p")) == ("p[4][2]", NEGATIVE)
    xy = np.asarray([pose()], np.float32)[..., :2]
    assert check_sequence(xy, format="coco", field="k", max_frames=5) is xy  # no score channel: nothing to check
