"""Exact behaviour of service.core.keypoints: layouts, normalisation, flip, pixel output.

The golden arrays come from the official MotionBERT code (see tests/fixtures/golden_tiny.npz). They
were made from higher-precision data than the float32 copies stored, so a float32 result may differ
from them by one unit in the last place: pixel-sized values are compared with a relative bound.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from service.core.keypoints import (
    CROP_MIN_VALID_JOINTS,
    FLIP_PERM,
    JOINT_NAMES,
    denormalise_pixel,
    flip,
    normalise_crop,
    normalise_pixel,
    to_h36m,
)
from service.core.options import FORMATS
from tests.data import FIXTURES, Golden, is_float32

GOLDEN = FIXTURES / "golden_tiny.npz"
J = {name: i for i, name in enumerate(JOINT_NAMES)}


@pytest.fixture(scope="module")
def golden() -> Golden:
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


# ---------------------------------------------------------------------------------------------- constants


def test_joint_names_and_layouts() -> None:
    assert JOINT_NAMES == (
        "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax",
        "nose", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
    )  # fmt: skip
    assert FORMATS == {"h36m": 17, "coco": 17, "halpe26": 26}
    assert CROP_MIN_VALID_JOINTS == 4


def test_flip_perm_swaps_left_and_right_names() -> None:
    assert FLIP_PERM == (0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13)
    swap = {"l": "r", "r": "l"}
    for i, name in enumerate(JOINT_NAMES):
        side, _, rest = name.partition("_")
        expected = f"{swap[side]}_{rest}" if side in swap else name
        assert JOINT_NAMES[FLIP_PERM[i]] == expected
    assert tuple(FLIP_PERM[p] for p in FLIP_PERM) == tuple(range(17))


# ------------------------------------------------------------------------------------------ golden arrays


def test_wild_halpe26_crop_and_pixel_match_official(golden: Golden) -> None:
    width, height = (float(v) for v in golden["wild_image_wh"])
    assert (width, height) == (1920.0, 1080.0)
    halpe26 = golden["wild_halpe26"]
    assert is_float32(halpe26)
    h36m = to_h36m(halpe26, "halpe26")
    crop = normalise_crop(h36m)
    pixel = normalise_pixel(h36m, width, height)
    assert crop.shape == pixel.shape == (300, 17, 3)
    assert crop.dtype == pixel.dtype == np.float32
    assert np.abs(crop - golden["wild_input_crop"]).max() <= 1e-6
    assert np.abs(pixel - golden["wild_input_pixel"]).max() <= 1e-6


def test_coco17_matches_official_conversion(golden: Golden) -> None:
    coco = golden["coco17_example"]
    assert is_float32(coco)
    out = to_h36m(coco, "coco")
    assert out.shape == (300, 17, 3)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, golden["coco17_example_as_h36m"], rtol=2e-7, atol=1e-6)


# -------------------------------------------------------------------------------------------- layouts


def _coco_frame() -> npt.NDArray[np.float64]:
    """One COCO-17 frame of a person facing the camera (their left on the image's right)."""
    return np.array(
        [
            [120.0, 100.0, 0.9],  # 0 nose
            [126.0, 94.0, 0.8],  # 1 l_eye
            [112.0, 96.0, 0.6],  # 2 r_eye
            [132.0, 98.0, 0.5],  # 3 l_ear
            [108.0, 98.0, 0.5],  # 4 r_ear
            [146.0, 138.0, 0.9],  # 5 l_shoulder
            [92.0, 142.0, 0.7],  # 6 r_shoulder
            [158.0, 170.0, 0.85],  # 7 l_elbow
            [82.0, 171.0, 0.84],  # 8 r_elbow
            [165.0, 201.0, 0.83],  # 9 l_wrist
            [75.0, 202.0, 0.82],  # 10 r_wrist
            [140.0, 202.0, 0.8],  # 11 l_hip
            [100.0, 198.0, 0.6],  # 12 r_hip
            [138.0, 250.0, 0.81],  # 13 l_knee
            [102.0, 251.0, 0.79],  # 14 r_knee
            [136.0, 300.0, 0.78],  # 15 l_ankle
            [104.0, 301.0, 0.77],  # 16 r_ankle
        ]
    )[None]


def test_coco_by_hand() -> None:
    out = to_h36m(_coco_frame(), "coco")
    expected = [
        [120.0, 200.0, 0.7],  # pelvis = mean(l_hip, r_hip), score mean(0.8, 0.6)
        [100.0, 198.0, 0.6],  # r_hip
        [102.0, 251.0, 0.79],  # r_knee
        [104.0, 301.0, 0.77],  # r_ankle
        [140.0, 202.0, 0.8],  # l_hip
        [138.0, 250.0, 0.81],  # l_knee
        [136.0, 300.0, 0.78],  # l_ankle
        [119.5, 170.0, 0.75],  # spine = mean(pelvis, thorax)
        [119.0, 140.0, 0.8],  # thorax = mean(l_shoulder, r_shoulder), score mean(0.9, 0.7)
        [120.0, 100.0, 0.9],  # nose
        [119.0, 95.0, 0.7],  # head = mean(l_eye, r_eye), score mean(0.8, 0.6)
        [146.0, 138.0, 0.9],  # l_shoulder
        [158.0, 170.0, 0.85],  # l_elbow
        [165.0, 201.0, 0.83],  # l_wrist
        [92.0, 142.0, 0.7],  # r_shoulder
        [82.0, 171.0, 0.84],  # r_elbow
        [75.0, 202.0, 0.82],  # r_wrist
    ]
    assert out.shape == (1, 17, 3)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], np.array(expected, dtype=np.float32), rtol=1e-7, atol=0)


def test_halpe26_by_hand() -> None:
    # Joint i of Halpe-26 at (10 i + 1, 500 - i) with score 0.5 + i / 100.
    i = np.arange(26, dtype=np.float64)
    frame = np.stack([10 * i + 1, 500 - i, 0.5 + i / 100], axis=-1)[None]
    out = to_h36m(frame, "halpe26")
    expected = [
        [191.0, 481.0, 0.69],  # pelvis <- 19 Hip
        [121.0, 488.0, 0.62],  # r_hip <- 12
        [141.0, 486.0, 0.64],  # r_knee <- 14
        [161.0, 484.0, 0.66],  # r_ankle <- 16
        [111.0, 489.0, 0.61],  # l_hip <- 11
        [131.0, 487.0, 0.63],  # l_knee <- 13
        [151.0, 485.0, 0.65],  # l_ankle <- 15
        [186.0, 481.5, 0.685],  # spine = mean(18 Neck, 19 Hip), score mean too
        [181.0, 482.0, 0.68],  # thorax <- 18 Neck
        [1.0, 500.0, 0.5],  # nose <- 0
        [171.0, 483.0, 0.67],  # head <- 17 Head
        [51.0, 495.0, 0.55],  # l_shoulder <- 5
        [71.0, 493.0, 0.57],  # l_elbow <- 7
        [91.0, 491.0, 0.59],  # l_wrist <- 9
        [61.0, 494.0, 0.56],  # r_shoulder <- 6
        [81.0, 492.0, 0.58],  # r_elbow <- 8
        [101.0, 490.0, 0.6],  # r_wrist <- 10
    ]
    np.testing.assert_allclose(out[0], np.array(expected, dtype=np.float32), rtol=1e-7, atol=0)


@pytest.mark.parametrize("layout", sorted(FORMATS))
def test_two_channels_get_score_one(layout: str) -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 500, size=(4, FORMATS[layout], 2))
    with_score = np.concatenate([xy, np.ones((4, FORMATS[layout], 1))], axis=-1)
    out = to_h36m(xy, layout)
    assert out.shape == (4, 17, 3)
    assert np.all(out[..., 2] == 1.0)  # averaged joints too
    np.testing.assert_array_equal(out, to_h36m(with_score, layout))


def test_h36m_layout_is_identity_copy() -> None:
    x = np.random.default_rng(1).uniform(0, 1, size=(3, 17, 3)).astype(np.float32)
    out = to_h36m(x, "h36m")
    np.testing.assert_array_equal(out, x)
    assert not np.shares_memory(out, x)


def test_averaged_score_is_mean_and_input_untouched() -> None:
    frame = _coco_frame()
    frame[0, 11, 2], frame[0, 12, 2] = 0.0, 0.9  # one hip missing: pelvis score is the plain mean
    before = frame.copy()
    out = to_h36m(frame, "coco")
    assert out[0, J["pelvis"], 2] == np.float32(0.45)
    np.testing.assert_array_equal(frame, before)


def test_unknown_layout_raises() -> None:
    with pytest.raises(ValueError, match="unknown keypoint format 'openpose'"):
        to_h36m(np.zeros((1, 25, 3)), "openpose")


# -------------------------------------------------------------------------------------- pixel mode


def test_normalise_pixel_literal_landscape() -> None:
    x = np.array([[[960.0, 540.0, 0.3], [1500.0, 540.0, 0.0], [0.0, 0.0, 1.0], [960.0, 1080.0, 0.5]]])
    out = normalise_pixel(x, 1920, 1080)
    expected = [[0.0, 0.0, 0.3], [1.0, 0.0, 0.0], [-16 / 9, -1.0, 1.0], [0.0, 1.0, 0.5]]
    np.testing.assert_allclose(out[0], np.array(expected, dtype=np.float32), rtol=1e-7, atol=0)
    assert out.dtype == np.float32


def test_normalise_pixel_literal_portrait() -> None:
    x = np.array([[540.0, 960.0, 1.0], [540.0, 0.0, 1.0], [1080.0, 960.0, 1.0]])
    out = normalise_pixel(x, 1080, 1920)  # portrait: min(w, h) / 2 = 540
    np.testing.assert_allclose(out, [[0.0, 0.0, 1.0], [0.0, -16 / 9, 1.0], [1.0, 0.0, 1.0]], rtol=1e-6)


def test_denormalise_pixel_literal_and_inverse() -> None:
    np.testing.assert_array_equal(
        denormalise_pixel(np.array([[1.0, 0.0, 0.5], [0.0, -1.0, -0.25]]), 1920, 1080),
        [[1500.0, 540.0, 270.0], [960.0, 0.0, -135.0]],
    )
    pixels = np.random.default_rng(2).uniform(0, 1920, size=(5, 17, 3))
    back = denormalise_pixel(normalise_pixel(pixels, 1920, 1080), 1920, 1080)
    np.testing.assert_allclose(back[..., :2], pixels[..., :2], rtol=0, atol=1e-3)


@pytest.mark.parametrize(("width", "height"), [(0, 1080), (1920, -1), (float("nan"), 1080), (1920, float("inf"))])
def test_pixel_functions_reject_bad_size(width: float, height: float) -> None:
    with pytest.raises(ValueError, match="image size"):
        normalise_pixel(np.zeros((1, 17, 3)), width, height)
    with pytest.raises(ValueError, match="image size"):
        denormalise_pixel(np.zeros((1, 17, 3)), width, height)


# ------------------------------------------------------------------------------------------- flip


def test_flip_moves_l_wrist_to_r_wrist_and_is_involution() -> None:
    x = np.random.default_rng(3).uniform(-1, 1, size=(2, 5, 17, 3)).astype(np.float32)
    x[..., J["l_wrist"], :] = [0.25, -0.5, 0.75]
    before = x.copy()
    out = flip(x)
    np.testing.assert_array_equal(out[..., J["r_wrist"], :], np.broadcast_to([-0.25, -0.5, 0.75], (2, 5, 3)))
    np.testing.assert_array_equal(out[..., J["pelvis"], 0], -x[..., J["pelvis"], 0])
    np.testing.assert_array_equal(out[..., 1:], x[..., FLIP_PERM, 1:])
    np.testing.assert_array_equal(flip(out), x)
    np.testing.assert_array_equal(x, before)
    assert out.dtype == np.float32
    assert not np.shares_memory(out, x)


def test_flip_two_channels() -> None:
    x = np.arange(34, dtype=np.float64).reshape(17, 2)
    out = flip(x)
    np.testing.assert_array_equal(out[J["l_hip"]], [-2.0, 3.0])  # r_hip's (2, 3) moved left
    np.testing.assert_array_equal(flip(out), x)


# ------------------------------------------------------------------------------------------ crop mode


def test_normalise_crop_literal_ignores_zero_score_joints() -> None:
    x = np.zeros((2, 17, 3))
    # Frame 0 spans x 100..300; frame 1 spans y 200..300: the box is the whole sequence's.
    x[0, :4] = [[100.0, 250.0, 1.0], [300.0, 250.0, 0.5], [200.0, 250.0, 2.0], [150.0, 250.0, 0.1]]
    x[1, :2] = [[200.0, 200.0, 0.7], [200.0, 300.0, 0.9]]
    x[1, 2] = [5000.0, -5000.0, 0.0]  # score 0: outside the box, ignored by it, then clipped
    # Box x 100..300, y 200..300 -> scale 200, corner (100, 150).
    out = normalise_crop(x)
    # The score 2.0 of frame 0's third joint is clipped to 1.0, as the official code clips all channels.
    expected_0 = [[-1.0, 0.0, 1.0], [1.0, 0.0, 0.5], [0.0, 0.0, 1.0], [-0.5, 0.0, 0.1]]
    expected_1 = [[0.0, -0.5, 0.7], [0.0, 0.5, 0.9], [1.0, -1.0, 0.0]]
    np.testing.assert_array_equal(out[0, :4], np.array(expected_0, dtype=np.float32))
    np.testing.assert_array_equal(out[1, :3], np.array(expected_1, dtype=np.float32))
    # The other joints (score 0) at pixel (0, 0) -> (-2.0, -2.5) -> clipped.
    np.testing.assert_array_equal(out[1, 3], [-1.0, -1.0, 0.0])
    assert out.dtype == np.float32


def test_normalise_crop_flat_box_uses_longer_side() -> None:
    x = np.zeros((1, 17, 3))
    x[0, :, 0] = np.linspace(0.0, 160.0, 17)
    x[0, :, 1] = 40.0
    x[0, :, 2] = 1.0
    out = normalise_crop(x)
    np.testing.assert_allclose(out[0, :, 0], np.linspace(-1.0, 1.0, 17), atol=1e-7)
    np.testing.assert_array_equal(out[0, :, 1], 0.0)


def test_normalise_crop_no_valid_joint_raises() -> None:
    x = np.ones((3, 17, 3))
    x[..., 2] = 0.0
    with pytest.raises(ValueError, match=r"at least 4 joints .* got 0"):
        normalise_crop(x)


def test_normalise_crop_too_few_valid_joints_raises() -> None:
    x = np.zeros((3, 17, 3))
    x[0, :3] = [[10.0, 10.0, 1.0], [50.0, 20.0, 1.0], [30.0, 90.0, 1.0]]  # official: all zeros
    with pytest.raises(ValueError, match="got 3"):
        normalise_crop(x)
    x[2, 5] = [70.0, 70.0, 0.4]
    assert normalise_crop(x).shape == (3, 17, 3)


def test_normalise_crop_zero_size_box_raises() -> None:
    x = np.zeros((10, 17, 3))
    x[:, J["pelvis"]] = [640.0, 360.0, 0.9]  # one joint seen in every frame: a point, not a box
    with pytest.raises(ValueError, match="non-zero box"):
        normalise_crop(x)
