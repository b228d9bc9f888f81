"""BVH export (service/motion/bvh.py), read back by an independent parser with forward kinematics (bvhio): a rigid
skeleton's motion comes back joint for joint; the file's structure, units, axes and height are as documented."""

from __future__ import annotations

from pathlib import Path

import bvhio
import numpy as np
import numpy.typing as npt
import pytest
from scipy.spatial.transform import Rotation

from service.core.keypoints import JOINT_NAMES
from service.motion import bvh

# Bone lengths of a made-up subject: thigh 0.42 + shin 0.40 + spine 0.22 + 0.24 + neck 0.10 + head 0.12 = 1.50.
LENGTHS = np.array([0, 0.12, 0.42, 0.40, 0.12, 0.42, 0.40, 0.22, 0.24, 0.10, 0.12, 0.15, 0.28, 0.25, 0.15, 0.28, 0.25])


def rigid_motion(frames: int = 24, seed: int = 0, torso: float = 0.0) -> npt.NDArray[np.float64]:
    """A skeleton of fixed bone lengths walking and turning, its limbs turned at random: camera-space joints.
    ``torso``: how far (radians, random per frame) the hips, spine, shoulders and neck swing on their own, as a
    lifter's torso changes shape from frame to frame."""
    rng = np.random.default_rng(seed)
    out = np.zeros((frames, 17, 3))
    for t in range(frames):
        turn = Rotation.from_euler("yx", [25 * t, 10 * np.sin(t / 3)], degrees=True)
        world = {0: turn}
        where = {0: np.array([0.1 * t, 0.9, 3.0])}
        for j in range(1, 17):
            parent = bvh.PARENTS[j]
            own = Rotation.from_rotvec(rng.normal(scale=0.5, size=3)) if j in bvh.CHILD else Rotation.identity()
            world[j] = world[parent] * own
            bone = bvh.REST[j] * LENGTHS[j]
            if j in bvh.BRANCHES:
                bone = Rotation.from_rotvec(rng.normal(scale=torso, size=3)).apply(bone)
            where[j] = where[parent] + world[parent].apply(bone)
        out[t] = np.stack([where[j] for j in range(17)])
    return bvh.to_bvh_axes(out)  # BVH axes -> camera axes (the same flip both ways)


def forward(path: Path, frames: int) -> npt.NDArray[np.float64]:
    """World positions [T, 17, 3] of the file's joints, by bvhio."""
    root = bvhio.readAsHierarchy(str(path))
    joints = {joint.Name: joint for joint, _, _ in root.layout()}
    out = np.zeros((frames, 17, 3))
    for t in range(frames):
        root.loadPose(t)
        out[t] = [np.array(joints[name].PositionWorld) for name in JOINT_NAMES]
    return out


@pytest.mark.parametrize("torso", [0.0, 0.3])
def test_a_skeleton_of_fixed_lengths_comes_back_joint_for_joint(tmp_path: Path, torso: float) -> None:
    """Also when its torso changes shape from frame to frame (each branch of the pelvis and thorax on its own base)."""
    motion = rigid_motion(torso=torso)
    path = tmp_path / "walk.bvh"
    path.write_text(bvh.write(motion, fps=25.0, height_m=1.70))
    centimetres = 170.0 / 1.50  # the chain from ankle to head is 1.50 (0.82 + 0.68) units, scaled to 170 cm
    expected = bvh.to_bvh_axes(motion) * centimetres
    np.testing.assert_allclose(forward(path, len(motion)), expected, atol=1e-3)  # 0.01 mm


def test_structure_units_axes_and_height(tmp_path: Path) -> None:
    motion = rigid_motion(frames=5)
    text = bvh.write(motion, fps=50.0, height_m=1.40)
    lines = text.splitlines()
    assert lines[:3] == ["HIERARCHY", "ROOT pelvis", "{"]
    joints = [line.split()[1] for line in lines if line.strip().startswith("JOINT")]
    assert [name for name in joints if not name.endswith("_base")] == list(JOINT_NAMES[1:])
    bases = [JOINT_NAMES[c] for c in (1, 4, 7, 9, 11, 14)]  # hips and spine; neck and shoulders
    assert [name for name in joints if name.endswith("_base")] == [f"{name}_base" for name in bases]
    assert all(joints[joints.index(f"{name}_base") + 1] == name for name in bases)  # each branch on its base
    assert text.count("End Site") == 5  # both ankles, both wrists, the head
    motion_at = lines.index("MOTION")
    assert lines[motion_at + 1 : motion_at + 3] == ["Frames: 5", "Frame Time: 0.020000"]
    rows = [row.split() for row in lines[motion_at + 3 :]]
    assert len(rows) == 5 and {len(row) for row in rows} == {6 + 22 * 3}
    path = tmp_path / "short.bvh"
    path.write_text(text)
    world = forward(path, 5)
    assert (world[:, 10, 1] > world[:, 0, 1]).all()  # the head above the pelvis: Y is up
    chain = [(1, 2), (2, 3), (0, 7), (7, 8), (8, 9), (9, 10)]
    height_cm = sum(np.linalg.norm(world[0, c] - world[0, p]) for p, c in chain)
    assert height_cm == pytest.approx(140.0, rel=1e-6)  # the requested 1.40 m


def test_bad_inputs_are_refused() -> None:
    for joints, words in ((np.zeros((3, 16, 3)), "expected joints"), (np.zeros((0, 17, 3)), "expected joints"),
                          (np.zeros((3, 17, 3)), "no height")):  # fmt: skip
        with pytest.raises(ValueError, match=words):
            bvh.write(joints)
    with pytest.raises(ValueError, match="fps must be"):
        bvh.write(rigid_motion(frames=2), fps=0)
