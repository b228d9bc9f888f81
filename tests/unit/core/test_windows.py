"""Window planning and the seamless merge."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from service.core import windows
from service.core.windows import merge, plan


def test_plan_short_sequence_is_one_window() -> None:
    assert plan(1, 243, 60) == [(0, 1)]
    assert plan(243, 243, 60) == [(0, 243)]


def test_plan_official_clips_with_zero_overlap() -> None:
    assert plan(300, 243, 0) == [(0, 243), (243, 300)]
    assert plan(486, 243, 0) == [(0, 243), (243, 486)]


def test_plan_overlapping_windows_are_full_length_and_cover_everything() -> None:
    spans = plan(1000, 243, 60)
    assert spans == [(0, 243), (151, 394), (303, 546), (454, 697), (606, 849), (757, 1000)]
    assert all(e - s == 243 for s, e in spans)
    assert all(prev[1] - nxt[0] >= 60 for prev, nxt in itertools.pairwise(spans))
    assert plan(244, 243, 60) == [(0, 243), (1, 244)]


def test_plan_rejects_overlap_not_below_window() -> None:
    with pytest.raises(ValueError, match="overlap must be in"):
        plan(500, 243, 243)


def _windows_that_disagree(
    spans: list[tuple[int, int]], truth: npt.NDArray[np.float32]
) -> list[npt.NDArray[np.float32]]:
    """What a model does at clip boundaries: each window's answer is the truth plus its own bias."""
    return [truth[s:e] + 0.05 * (i + 1) for i, (s, e) in enumerate(spans)]


def test_official_clipping_jumps_by_the_windows_disagreement() -> None:
    frames = 486
    truth = np.zeros((frames, 17, 3), np.float32)
    spans = plan(frames, 243, 0)
    out = merge(_windows_that_disagree(spans, truth), spans, frames, rootrel=False)
    step = np.abs(np.diff(out[:, 1, 0]))
    assert step[242] == pytest.approx(0.05, abs=1e-6)  # the whole disagreement in one frame


def test_cross_fade_spreads_the_disagreement_over_the_overlap() -> None:
    frames = 486
    t = np.linspace(0, 1, frames, dtype=np.float32)
    truth = np.broadcast_to(t[:, None, None], (frames, 17, 3)).copy()
    spans = plan(frames, 243, 60)
    out = merge(_windows_that_disagree(spans, truth), spans, frames, rootrel=False)
    # Where windows do not overlap the answer is that window's; in overlaps it moves linearly between them.
    motion = 1 / (frames - 1)
    step = np.abs(np.diff(out[:, 1, 0]))
    assert step.max() <= motion + 0.05 / 60 + 1e-6
    assert out[0, 1, 0] == pytest.approx(0.05, abs=1e-6)
    assert out[-1, 1, 0] == pytest.approx(1 + 0.05 * len(spans), abs=1e-6)


def test_merge_of_identical_windows_is_exact() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(700, 17, 3)).astype(np.float32)
    spans = plan(700, 243, 60)
    out = merge([truth[s:e] for s, e in spans], spans, 700, rootrel=False)
    expected = truth.copy()
    for s, _ in spans:
        expected[s, 0, 2] = 0.0  # the official root depth reset at each window's first frame
    np.testing.assert_allclose(out[[0, 100, 300, 699]], expected[[0, 100, 300, 699]], atol=1e-6)


def test_rootrel_centres_every_frame_on_the_pelvis() -> None:
    rng = np.random.default_rng(1)
    out = rng.normal(size=(50, 17, 3)).astype(np.float32)
    merged = merge([out], [(0, 50)], 50, rootrel=True)
    assert np.abs(merged[:, 0]).max() == 0.0
    np.testing.assert_allclose(merged[:, 5] + out[:, 0], out[:, 5], atol=1e-6)


def test_count_is_the_number_of_planned_windows() -> None:
    for frames in (1, 26, 27, 28, 100, 243, 1000, 10_000):
        for window, overlap in ((27, 0), (27, 6), (27, 26), (243, 60), (8, 1)):
            assert windows.count(frames, window, overlap) == len(windows.plan(frames, window, overlap))
