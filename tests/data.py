"""Test data: where the fixtures are, and deterministic keypoint sequences."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
# The message for a score of -1.5 (service/core/arrays.py: the one rule for scores).
NEGATIVE = "score -1.5 is negative; a score is a confidence in [0, 1] (0 marks a missing joint, above 1 counts as 1)"
# The arrays of golden_tiny.npz by name: float32 inputs and outputs, and the int64 image size wild_image_wh.
Golden = dict[str, npt.NDArray[np.float32 | np.int64]]


def is_float32(array: npt.NDArray[Any]) -> TypeGuard[npt.NDArray[np.float32]]:
    """Whether ``array`` holds float32 (narrows a :data:`Golden` array to the type the core's functions take)."""
    return array.dtype == np.float32


def walk(n: int, joints: int = 17) -> list[list[list[float]]]:
    """A deterministic, smooth pixel-space sequence of n frames (x, y, score)."""
    rng = np.random.default_rng(7)
    base = rng.uniform([700, 300], [1200, 900], size=(joints, 2))
    t = np.arange(n)[:, None, None]
    xy = base[None] + 40 * np.sin(t / 15 + np.arange(joints)[None, :, None])
    score = np.full((n, joints, 1), 0.9)
    frames: list[list[list[float]]] = np.concatenate([xy, score], axis=-1).round(3).tolist()
    return frames


def project(
    joints_mm: npt.NDArray[np.floating[Any]],
    *,
    width: int = 1920,
    height: int = 1080,
    focal: float = 1200.0,
    distance_mm: float = 4500.0,
) -> npt.NDArray[np.float32]:
    """Pinhole projection of Y-up world joints seen from the front: pixels ``[T, 17, 2]``."""
    centred = joints_mm - joints_mm[:, :1].mean(axis=0, keepdims=True)
    x, y, z = centred[..., 0], -centred[..., 1], centred[..., 2] + distance_mm
    pixels = np.stack([focal * x / z + width / 2, focal * y / z + height / 2], axis=-1)
    out: npt.NDArray[np.float32] = pixels.astype(np.float32)
    return out
