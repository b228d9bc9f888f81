"""Smoothing (service/core/smoothing.py): savgol keeps quadratic motion exactly and removes jitter; one-euro is
causal, leaves stillness still and removes jitter; the options' ranges are checked with the field named."""

from __future__ import annotations

import numpy as np
import pytest

from service.core.options import LiftOptions
from service.core.smoothing import one_euro, savgol, smooth
from service.errors import InvalidInput

RNG = np.random.default_rng(3)
T = 120


def jitter(x: np.ndarray) -> float:  # type: ignore[type-arg]
    """Mean magnitude of the second difference per joint (acceleration per frame²): what smoothing removes."""
    return float(np.linalg.norm(np.diff(x, n=2, axis=0), axis=-1).mean())


def motion() -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """A smooth quadratic-ish path of 17 joints, and the same with frame-to-frame noise."""
    t = np.linspace(0, 4, T)[:, None, None]
    clean = (0.3 * t + 0.05 * t**2 + np.linspace(-1, 1, 17)[None, :, None] * np.array([1.0, 0.5, 0.2])).astype(
        np.float32
    )
    noisy = (clean + RNG.normal(scale=0.01, size=clean.shape)).astype(np.float32)
    return clean, noisy


def test_savgol_keeps_quadratic_motion_and_removes_jitter() -> None:
    clean, noisy = motion()
    np.testing.assert_allclose(savgol(clean, 9), clean, atol=2e-5)  # a quadratic passes unchanged: no lag
    assert jitter(savgol(noisy, 9)) < jitter(noisy) / 4
    assert jitter(savgol(noisy, 21)) < jitter(savgol(noisy, 9))  # a longer window smooths more
    assert savgol(noisy[:3], 9) is not None and savgol(noisy[:3], 9).shape == (3, 17, 3)  # too short: as it is


def test_one_euro_is_causal_keeps_stillness_and_removes_jitter() -> None:
    _, noisy = motion()
    out = one_euro(noisy, fps=30, cutoff=1.0, beta=0.5)
    changed = noisy.copy()
    changed[60:] += 1.0
    np.testing.assert_array_equal(one_euro(changed, fps=30, cutoff=1.0, beta=0.5)[:60], out[:60])  # no look-ahead
    still = np.ones((30, 17, 3), np.float32)
    np.testing.assert_array_equal(one_euro(still, fps=30, cutoff=1.0, beta=0.5), still)
    assert jitter(out) < jitter(noisy) / 2
    assert jitter(one_euro(noisy, fps=30, cutoff=0.3, beta=0.5)) < jitter(out)  # a lower cutoff smooths more


def test_smooth_follows_the_options() -> None:
    _, noisy = motion()
    assert smooth(noisy, LiftOptions("h36m")) is noisy
    assert smooth(noisy, LiftOptions("h36m", smoothing="none")) is noisy
    np.testing.assert_array_equal(smooth(noisy, LiftOptions("h36m", smoothing="savgol", smoothing_window=11)),
                                  savgol(noisy, 11))  # fmt: skip
    np.testing.assert_array_equal(
        smooth(noisy, LiftOptions("h36m", smoothing="one-euro", smoothing_cutoff=2.0, smoothing_beta=0.1, fps=25.0)),
        one_euro(noisy, fps=25.0, cutoff=2.0, beta=0.1),
    )


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        ({"smoothing": "kalman"}, "smoothing", "unknown smoothing 'kalman'; expected one of none, savgol, one-euro"),
        ({"smoothing_window": 8}, "smoothing_window", "smoothing_window must be odd, 5 to 99 frames, got 8"),
        ({"smoothing_window": 101}, "smoothing_window", "smoothing_window must be odd, 5 to 99 frames, got 101"),
        ({"smoothing_cutoff": 0}, "smoothing_cutoff", "smoothing_cutoff must be between 0.001 and 1000, got 0.0"),
        ({"fps": 0.5}, "fps", "fps must be between 1 and 1000, got 0.5"),
    ],
)
def test_smoothing_mistakes_name_the_field(given: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        LiftOptions.from_mapping({"format": "coco", **given}).check(window=27)
    assert (caught.value.field, caught.value.message) == (field, message)
