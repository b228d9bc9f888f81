"""Root trajectory (service/core/trajectory.py): given the true pose about the pelvis, the pelvis comes back where a
pinhole camera saw it, as it walks away; the assumptions' edges (the default focal length, frames with no 2D size)
behave as documented."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from service.core.options import LiftOptions
from service.core.trajectory import place
from service.errors import InvalidInput

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "mocap_cmu_martial06.npz"
SIZE = (1920.0, 1080.0)
F32 = npt.NDArray[np.float32]


def camera_joints(frames: int = 120) -> F32:
    """Mocap joints in camera space (metres; x right, y down, z away), the subject drifting from 3 m to 7 m away."""
    with np.load(FIXTURE) as z:
        world = z["joints3d_mm"][:frames].astype(np.float64) / 1000.0
    centred = world - world[:, :1].mean(axis=0, keepdims=True)
    away = np.linspace(3.0, 7.0, frames)[:, None]
    out: F32 = np.stack([centred[..., 0], -centred[..., 1], centred[..., 2] + away], axis=-1).astype(np.float32)
    return out


def seen(joints: F32, focal: float) -> F32:
    """What the lifter's input is: pixels through the pinhole, pixel-normalised, score 1."""
    u = focal * joints[..., 0] / joints[..., 2] + SIZE[0] / 2
    v = focal * joints[..., 1] / joints[..., 2] + SIZE[1] / 2
    half = min(SIZE) / 2
    xy = np.stack([(u - SIZE[0] / 2) / half, (v - SIZE[1] / 2) / half], axis=-1)
    out: F32 = np.concatenate([xy, np.ones_like(xy[..., :1])], axis=-1).astype(np.float32)
    return out


def test_the_pelvis_comes_back_where_the_camera_saw_it() -> None:
    joints = camera_joints()
    about = joints - joints[:, :1]
    path = place(about, seen(joints, 1200.0), SIZE, 1200.0, field="tracks[0].keypoints")
    assert path.shape == (120, 3) and path.dtype == np.float32
    truth = joints[:, 0]
    depth_error = np.abs(path[:, 2] - truth[:, 2]) / truth[:, 2]
    assert depth_error.max() < 0.03  # weak perspective about the pelvis: the body's own depth costs a little
    assert np.abs(path[:, :2] - truth[:, :2]).max() < 0.05  # metres
    assert np.all(np.diff(path[::10, 2]) > 0)  # walking away


def test_a_wrong_focal_length_scales_the_distance_by_its_ratio() -> None:
    joints = camera_joints()
    about, inputs = joints - joints[:, :1], seen(joints, 1200.0)
    right = place(about, inputs, SIZE, 1200.0, field="f")
    assumed = LiftOptions("coco", SIZE).resolved_focal_px()
    assert assumed == pytest.approx(math.hypot(1920, 1080))
    assert LiftOptions("coco", SIZE, focal_length_px=900.0).resolved_focal_px() == 900.0
    assert LiftOptions("coco").resolved_focal_px() is None
    assert assumed is not None
    diagonal = place(about, inputs, SIZE, assumed, field="f")
    np.testing.assert_allclose(diagonal[:, 2] / right[:, 2], math.hypot(1920, 1080) / 1200.0, rtol=1e-5)
    np.testing.assert_allclose(diagonal[:, :2], right[:, :2], rtol=1e-5, atol=1e-6)  # sideways: unchanged


def test_frames_without_a_2d_size_take_their_neighbours_scale() -> None:
    joints = camera_joints(10)
    about, inputs = joints - joints[:, :1], seen(joints, 1200.0)
    inputs[4, :, :2] = inputs[4, :1, :2]  # every joint on the pelvis: no size to measure
    path = place(about, inputs, SIZE, 1200.0, field="f")
    assert path[3, 2] < path[4, 2] < path[5, 2]  # between its neighbours' distances
    inputs[:, :, :2] = inputs[:, :1, :2]
    with pytest.raises(InvalidInput) as caught:
        place(about, inputs, SIZE, 1200.0, field="tracks[2].keypoints")
    assert caught.value.field == "tracks[2].keypoints"
    assert "no size in any frame" in caught.value.message
