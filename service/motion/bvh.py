"""BVH (Biovision Hierarchy) export of lifted joints, for animation tools (Blender, MotionBuilder, Maya...).

**Skeleton**: the 17 H36M joints of the answer (``JOINT_NAMES``), rooted at the pelvis, with End Sites past the
ankles, the wrists and the head. The three branches of the pelvis (hips, spine) and of the thorax (shoulders, neck)
each hang from a zero-length joint of their own at the branching joint (``<branch>_base``, as CMU's files have
``LHipJoint``), so each branch can turn on its own: a pelvis or thorax joint alone could only turn its three
branches together, and the answer's torso changes shape from frame to frame. Each bone has one length for the whole
sequence (its median over the frames), so the motion is a rigid skeleton's; the root has position and rotation
channels, every other joint rotation only.

**Axes and units**: BVH's usual frame: +Y up, +X the subject's left, +Z the subject's front. The answer's camera
space (x right, y down, z away from the camera) maps to X = x, Y = -y, Z = -z (a 180° turn about x: still
right-handed). Units are centimetres: the skeleton is scaled so that its chain from ankle to head joint (thigh +
shin + pelvis-spine + spine-thorax + thorax-neck + neck-head, the mean of both legs) is ``height_m`` (1.70 m unless
told: one camera cannot measure it).

**Rest pose**: a T-pose: legs straight down, spine and head straight up, arms straight out to the sides. The
hips and spine (from the pelvis) and the shoulders and neck (from the thorax) point where they point in the
sequence: along their median direction in the frame of their parent, so the torso keeps the subject's own shape.

**Rotations** (inverse kinematics): the pelvis turns to the frame of its hips (X, from right to left hip) and spine
(Y, made perpendicular to X); the thorax to the frame of its shoulders and neck likewise; each branch's base, and
every other joint, by the shortest rotation that points its bone along the answer's bone (no twist: a single 3D
point per joint shows none). Channels ``Zrotation Xrotation Yrotation`` in degrees, i.e. local rotation Rz·Rx·Ry.
Forward kinematics of the file gives back every bone's direction exactly; the joints differ from the answer only by
how much its bone lengths vary around their medians (tests/unit/motion/test_bvh.py; ``motionlift bench motion``).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.spatial.transform import Rotation

from service.core.keypoints import JOINT_NAMES

Floats = npt.NDArray[np.float64]

PARENTS: Final = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
LEFT, RIGHT, UP, DOWN = (1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0)
# The rest direction of each joint's offset from its parent (T-pose, BVH axes); index 0 (the root) has none.
REST: Final = np.array(
    [(0, 0, 0), RIGHT, DOWN, DOWN, LEFT, DOWN, DOWN, UP, UP, UP, UP, LEFT, LEFT, LEFT, RIGHT, RIGHT, RIGHT], np.float64
)
# Joints whose rotation comes from a frame of two of their branches: (joint, the branch along +X from -X, up).
FRAMES: Final = {0: ((1, 4), 7), 8: ((14, 11), 9)}
CHILD: Final = {1: 2, 2: 3, 4: 5, 5: 6, 7: 8, 9: 10, 11: 12, 12: 13, 14: 15, 15: 16}  # the one-bone joints
# The branches of the pelvis and the thorax, each hung from a base node (see the module). The file's nodes are the
# 17 joints, then one base per branch; NODE_PARENT is the node tree, NODE_JOINT where each node sits.
BRANCHES: Final = (1, 4, 7, 9, 11, 14)
NODE_NAMES: Final = (*JOINT_NAMES, *(f"{JOINT_NAMES[c]}_base" for c in BRANCHES))
NODE_JOINT: Final = (*range(len(PARENTS)), *(PARENTS[c] for c in BRANCHES))
NODE_PARENT: Final = (
    *(len(PARENTS) + BRANCHES.index(j) if j in BRANCHES else PARENTS[j] for j in range(len(PARENTS))),
    *(PARENTS[c] for c in BRANCHES),
)
HEIGHT_CHAIN: Final = ((1, 2), (2, 3), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10))  # (parent, child) bones
END_SITE_CM: Final = 5.0
DEFAULT_HEIGHT_M: Final = 1.70


def to_bvh_axes(joints: Floats) -> Floats:
    """Camera space (x right, y down, z away) -> BVH axes (X, -y, -z)."""
    out: Floats = joints * np.array([1.0, -1.0, -1.0])
    return out


def bone_lengths(points: Floats) -> Floats:
    """Per joint: the median length of the bone from its parent over the frames (0 for the root)."""
    lengths = np.zeros(len(PARENTS))
    for j, p in enumerate(PARENTS):
        if p >= 0:
            lengths[j] = float(np.median(np.linalg.norm(points[:, j] - points[:, p], axis=-1)))
    return lengths


def scale_to_cm(lengths: Floats, height_m: float) -> float:
    """Centimetres per unit of the answer so that the ankle-to-head chain is ``height_m``."""
    legs = (lengths[2] + lengths[3] + lengths[5] + lengths[6]) / 2
    chain = legs + lengths[7] + lengths[8] + lengths[9] + lengths[10]
    if not chain > 0:
        raise ValueError("the skeleton has no height (all joints at one point)")
    return float(100.0 * height_m / chain)


def _unit(v: Floats) -> Floats:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    out: Floats = v / np.where(norm > 0, norm, 1.0)
    return out


def _frame(x: Floats, up: Floats) -> Floats:
    """Rotation matrices [T, 3, 3] whose columns are X along ``x`` and Y along ``up`` made perpendicular to it."""
    ex = _unit(x)
    ey = _unit(up - np.sum(up * ex, axis=-1, keepdims=True) * ex)
    return np.stack([ex, ey, np.cross(ex, ey)], axis=-1)


def _swing(a: Floats, b: Floats) -> Floats:
    """The shortest rotations [T, 3, 3] taking unit vectors ``a`` onto ``b`` (per frame)."""
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis, axis=-1), np.sum(a * b, axis=-1)
    angle = np.arctan2(sin, cos)
    # Opposite vectors: any axis perpendicular to a does (a x X, or a x Y when a is along X).
    other = np.cross(a, np.where(np.abs(a[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]))
    axis = np.where((sin < 1e-9)[:, None], other, axis)
    matrices: Floats = Rotation.from_rotvec(_unit(axis) * angle[:, None]).as_matrix()
    return matrices


def global_rotations(points: Floats) -> tuple[Floats, Floats]:
    """Each node's rotation in the world per frame ``[T, N, 3, 3]`` (see the module), and the branches' rest
    directions in their parent joint's frame ``[len(BRANCHES), 3]``."""
    frames, joints = len(points), len(PARENTS)
    out = np.tile(np.eye(3), (frames, len(NODE_NAMES), 1, 1))
    for j, ((right, left), up) in FRAMES.items():
        out[:, j] = _frame(points[:, left] - points[:, right], points[:, up] - points[:, j])
    rest = np.zeros((len(BRANCHES), 3))
    for b, c in enumerate(BRANCHES):  # a base turns its branch from its median direction to this frame's
        p = PARENTS[c]
        seen = _unit(points[:, c] - points[:, p])
        rest[b] = _unit(np.median(np.einsum("tji,tj->ti", out[:, p], seen), axis=0))
        out[:, joints + b] = np.einsum(
            "tij,tjk->tik", _swing(np.einsum("tij,j->ti", out[:, p], rest[b]), seen), out[:, p]
        )
    for node in _depth_first(0):
        if node >= joints or node in FRAMES:
            continue
        parent = out[:, NODE_PARENT[node]] if node else np.tile(np.eye(3), (frames, 1, 1))
        if node in CHILD:
            before = np.einsum("tij,j->ti", parent, REST[CHILD[node]])
            seen = _unit(points[:, CHILD[node]] - points[:, node])
            out[:, node] = np.einsum("tij,tjk->tik", _swing(before, seen), parent)
        else:
            out[:, node] = parent  # a leaf: nothing beyond it to point
    return out, rest


def write(joints: Floats, *, fps: float = 30.0, height_m: float = DEFAULT_HEIGHT_M) -> str:
    """The BVH text of one track's joints ``[T, 17, 3]`` (an answer's ``joints3d``, camera space) at ``fps``.
    ``ValueError`` for a wrong shape, fps or height."""
    if joints.ndim != 3 or joints.shape[1:] != (len(JOINT_NAMES), 3) or len(joints) == 0:
        raise ValueError(f"expected joints [frames, {len(JOINT_NAMES)}, 3], got {list(joints.shape)}")
    if not (0 < fps <= 1000 and 0.3 <= height_m <= 3.0):
        raise ValueError("fps must be in (0, 1000] and height_m in [0.3, 3.0]")
    points = to_bvh_axes(joints.astype(np.float64))
    lengths = bone_lengths(points)
    cm = scale_to_cm(lengths, height_m)
    rotations, rest = global_rotations(points)
    offsets = rest_offsets(rest, lengths) * cm
    lines = ["HIERARCHY", *_hierarchy(0, offsets, 0), "MOTION", f"Frames: {len(points)}"]
    lines.append(f"Frame Time: {1.0 / fps:.6f}")
    lines.extend(_motion(points * cm, rotations))
    return "\n".join(lines) + "\n"


def rest_offsets(rest: Floats, lengths: Floats) -> Floats:
    """Each node's offset from its parent node ``[N, 3]``: along its rest direction (a branch: ``rest``, its median
    direction), its bone's length; the bases sit on their joint."""
    offsets = np.zeros((len(NODE_NAMES), 3))
    offsets[: len(PARENTS)] = REST * lengths[:, None]
    for b, c in enumerate(BRANCHES):
        offsets[c] = rest[b] * lengths[c]
    return offsets


def _hierarchy(j: int, offsets: Floats, depth: int) -> list[str]:
    pad = "  " * depth
    offset = offsets[j]
    head = f"{pad}ROOT {NODE_NAMES[j]}" if j == 0 else f"{pad}JOINT {NODE_NAMES[j]}"
    channels = "6 Xposition Yposition Zposition" if j == 0 else "3"
    lines = [
        head,
        f"{pad}{{",
        f"{pad}  OFFSET {_numbers(offset)}",
        f"{pad}  CHANNELS {channels} Zrotation Xrotation Yrotation",
    ]
    children = _children(j)
    for child in children:
        lines.extend(_hierarchy(child, offsets, depth + 1))
    if not children:  # ankles, wrists, head: an End Site a little further along the bone
        tip = _unit(REST[j]) * END_SITE_CM
        lines += [f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {_numbers(tip)}", f"{pad}  }}"]
    lines.append(f"{pad}}}")
    return lines


def _motion(points: Floats, rotations: Floats) -> list[str]:
    """One line per frame: the root's position, then each joint's local Z, X, Y angles in hierarchy order."""
    columns = [points[:, 0]]
    for j in _depth_first(0):
        parent = rotations[:, NODE_PARENT[j]] if j else np.tile(np.eye(3), (len(points), 1, 1))
        local = np.einsum("tji,tjk->tik", parent, rotations[:, j])  # parent^T @ own, per frame
        columns.append(Rotation.from_matrix(local).as_euler("ZXY", degrees=True))
    table = np.concatenate(columns, axis=1)
    return [_numbers(row) for row in table]


def _children(node: int) -> list[int]:
    return [c for c, p in enumerate(NODE_PARENT) if p == node and c != node]


def _depth_first(node: int) -> list[int]:
    """The nodes below ``node`` (itself first) in the file's order."""
    return [node, *(k for c in _children(node) for k in _depth_first(c))]


def _numbers(values: Floats) -> str:
    return " ".join(f"{v:.4f}" for v in np.asarray(values).ravel())
