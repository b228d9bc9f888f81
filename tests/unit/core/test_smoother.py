"""The live smoother (service/core/smoother.py): frame by frame it gives what the whole-sequence filters give, it
holds back exactly the frames it declares, and a gap starts a new savgol segment."""

from __future__ import annotations

import numpy as np
import pytest

from service.core.options import LiftOptions
from service.core.smoother import Held, Smoother
from service.core.smoothing import one_euro, savgol

NOISY = (
    np.random.default_rng(11).normal(scale=0.05, size=(40, 17, 3)).astype(np.float32)
    + np.linspace(0, 1, 40, dtype=np.float32)[:, None, None]
)


def options(**smoothing: object) -> LiftOptions:
    return LiftOptions(format="h36m", **smoothing)  # type: ignore[arg-type]


def run(smoother: Smoother[int], numbers: list[int], rows: np.ndarray) -> list[list[Held[int]]]:  # type: ignore[type-arg]
    """What each ``feed`` released, then what ``flush`` released (the last entry)."""
    out = [smoother.feed(n, row, n) for n, row in zip(numbers, rows, strict=True)]
    return [*out, smoother.flush()]


def joined(released: list[list[Held[int]]]) -> tuple[list[int], np.ndarray]:  # type: ignore[type-arg]
    held = [h for step in released for h in step]
    return [h.payload for h in held], np.stack([h.joints for h in held])


@pytest.mark.parametrize("window", [5, 9])
def test_savgol_frame_by_frame_equals_the_whole_sequence_and_holds_back_half_a_window(window: int) -> None:
    smoother: Smoother[int] = Smoother(options(smoothing="savgol", smoothing_window=window))
    released = run(smoother, list(range(40)), NOISY)
    numbers, joints = joined(released)
    assert numbers == list(range(40))
    np.testing.assert_allclose(joints, savgol(NOISY, window), atol=1e-6)
    half = window // 2
    # Nothing until the first full window; then the frames up to its centre; then one per frame, half behind.
    sizes = [len(step) for step in released[:-1]]
    assert sizes == [0] * (window - 1) + [half + 1] + [1] * (40 - window)
    assert [h.payload for h in released[20]] == [20 - half]
    assert [h.payload for h in released[-1]] == list(range(40 - half, 40))  # the end: fitted at flush


def test_savgol_on_a_track_shorter_than_the_window_is_fitted_at_the_end() -> None:
    smoother: Smoother[int] = Smoother(options(smoothing="savgol", smoothing_window=9))
    released = run(smoother, list(range(7)), NOISY[:7])
    assert all(step == [] for step in released[:-1]) and smoother.holding is False
    numbers, joints = joined(released)
    assert numbers == list(range(7))
    np.testing.assert_allclose(joints, savgol(NOISY[:7], 9), atol=1e-6)


def test_a_gap_ends_a_savgol_segment() -> None:
    smoother: Smoother[int] = Smoother(options(smoothing="savgol", smoothing_window=5))
    numbers = [*range(15), *range(20, 40)]  # frames 15-19 never answered (skipped)
    released = run(smoother, numbers, NOISY[numbers])
    got, joints = joined(released)
    assert got == numbers
    np.testing.assert_allclose(joints[:15], savgol(NOISY[:15], 5), atol=1e-6)
    np.testing.assert_allclose(joints[15:], savgol(NOISY[20:40], 5), atol=1e-6)
    # frame 20's arrival releases the last frames before the gap, fitted on what they had
    assert [h.payload for h in released[15]] == [13, 14]


def test_one_euro_frame_by_frame_equals_the_whole_sequence_and_holds_nothing() -> None:
    smoother: Smoother[int] = Smoother(
        options(smoothing="one-euro", smoothing_cutoff=0.5, smoothing_beta=2.0, fps=25.0)
    )
    released = run(smoother, list(range(40)), NOISY)
    assert [len(step) for step in released] == [1] * 40 + [0]
    np.testing.assert_allclose(joined(released)[1], one_euro(NOISY, fps=25.0, cutoff=0.5, beta=2.0), atol=1e-6)


def test_one_euro_takes_a_gap_as_a_longer_step() -> None:
    one_euro_options = options(smoothing="one-euro")
    gapped: Smoother[int] = Smoother(one_euro_options)
    first = gapped.feed(0, NOISY[0], 0)[0].joints
    jump = gapped.feed(3, NOISY[1], 3)[0].joints
    steady: Smoother[int] = Smoother(one_euro_options)
    steady.feed(0, NOISY[0], 0)
    step = steady.feed(1, NOISY[1], 1)[0].joints
    np.testing.assert_array_equal(first, NOISY[0])
    # three frame periods let the filter move further towards the new value than one does
    assert np.abs(jump - NOISY[1]).mean() < np.abs(step - NOISY[1]).mean()


def test_none_passes_frames_through() -> None:
    smoother: Smoother[int] = Smoother(options())
    released = run(smoother, list(range(5)), NOISY[:5])
    numbers, joints = joined(released)
    assert numbers == list(range(5)) and [len(s) for s in released] == [1] * 5 + [0]
    np.testing.assert_array_equal(joints, NOISY[:5])
