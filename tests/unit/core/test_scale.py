"""Metric scale (service/core/scale.py): a subject built from anthropometric proportions, in arbitrary units and
moving, comes back at its known height within 2%; a skeleton at one point is left as it is."""

from __future__ import annotations

import numpy as np
import pytest

from service.core.scale import CHAIN_FRACTION, chain, metric

# Heights of the joints of a person standing straight, as fractions of stature (Drillis and Contini's proportions
# as tabled by Winter: ankle 0.039, knee 0.285, hip 0.530, shoulder 0.818, chin 0.870; the H36M head joint 0.02
# below the top of the head; spine and thorax between hip and shoulder).
HEIGHTS = {0: 0.530, 1: 0.530, 2: 0.285, 3: 0.039, 4: 0.530, 5: 0.285, 6: 0.039, 7: 0.640, 8: 0.818, 9: 0.870,
           10: 0.980, 11: 0.818, 12: 0.630, 13: 0.485, 14: 0.818, 15: 0.630, 16: 0.485}  # fmt: skip
SIDE = {1: -0.1, 2: -0.1, 3: -0.1, 4: 0.1, 5: 0.1, 6: 0.1, 11: 0.2, 12: 0.22, 13: 0.22, 14: -0.2, 15: -0.22, 16: -0.22}


def subject(stature: float, frames: int = 30) -> np.ndarray:  # type: ignore[type-arg]
    """Camera-space joints (y down) of a standing subject ``stature`` tall, swaying its arms, in metres."""
    pose = np.array([[SIDE.get(j, 0.0) * stature, -HEIGHTS[j] * stature, 0.0] for j in range(17)])
    out = np.repeat(pose[None], frames, axis=0)
    out[:, [12, 13, 15, 16], 2] += np.sin(np.linspace(0, 3, frames))[:, None] * 0.1  # arms move: no effect
    return out.astype(np.float32)


@pytest.mark.parametrize("stature", [1.55, 1.62, 1.90])
def test_a_subject_of_known_height_comes_back_at_that_height(stature: float) -> None:
    rng = np.random.default_rng(1)
    in_image_units = subject(stature) * 0.37 + np.array([0.2, 0.1, 0.0], np.float32)  # what a model might answer
    in_image_units += rng.normal(scale=0.002, size=in_image_units.shape).astype(np.float32)  # and its jitter
    metres = metric(in_image_units, stature)
    standing = (metres[:, 3, 1] - metres[:, 10, 1]).mean() / (HEIGHTS[10] - HEIGHTS[3])  # ankle to head, scaled up
    assert standing == pytest.approx(stature, rel=0.02)
    assert chain(metres) == pytest.approx(CHAIN_FRACTION * stature, rel=1e-5)


def test_a_skeleton_without_length_is_left_alone() -> None:
    still = np.zeros((4, 17, 3), np.float32)
    assert metric(still, 1.7) is still
