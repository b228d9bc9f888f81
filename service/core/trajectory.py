"""Where the person is in the camera's 3D space (``root: "trajectory"``), from where and how big they appear.

The model answers a pose about the pelvis; one camera does not say how far away that pose is. Assuming a pinhole
camera (principal point at the image centre, no lens distortion, still) with a focal length of ``f`` pixels, and
weak perspective about the pelvis in each frame (the body's own depth is small next to its distance), the 2D pose
about its pelvis ``p(t)`` (pixels) is ``s(t) * P_xy(t)``, ``P(t)`` the 3D pose about its pelvis and ``s = f / Z``.
The scale is taken as the ratio of the two poses' spreads, ``s(t) = sqrt(sum w |p|^2 / sum w |P_xy|^2)`` over the
joints weighted by the detector's scores: equal to the least-squares fit when the model's x, y overlay the 2D
input, and still a size (never negative) when they do not quite, so

    Z(t) = f / s(t),   X(t) = (u(t) - cx) / s(t),   Y(t) = (v(t) - cy) / s(t)

with ``(u, v)`` the 2D pelvis. The trajectory is in the units of the pose: metres when ``subject_height_m`` gives
them, else the answer's own units (then only its shape is meaningful, not its size). When the focal length is not
given it is taken as the image diagonal, ``sqrt(w^2 + h^2)`` pixels (``LiftOptions.resolved_focal_px``; about 53
degrees diagonal field of view), the approximation CLIFF (Li et al., ECCV 2022) uses for full-frame images. A
wrong focal length scales the distance by its ratio to the true one and leaves x, y alone, so give it when it is
known (``focal_length_px``).

Frames where the pose has no extent in 2D (every weighted joint on the pelvis) take the scale of their nearest
frames. Axes are the answer's (``coordinates.space``): x right, y down, z away from the camera.
"""

from __future__ import annotations

import numpy as np

from service.core.backend import Array
from service.errors import InvalidInput

ROOT = 0  # the pelvis in H36M-17


def place(pose: Array, inputs: Array, image_size: tuple[float, float], focal_px: float, *, field: str) -> Array:
    """The pelvis trajectory ``[T, 3]`` of a track.

    ``pose`` ``[T, 17, 3]``: the 3D pose about the pelvis (any units); ``inputs`` ``[T, 17, 3]``: the track's 2D
    keypoints in H36M order, pixel-normalised (``keypoints.normalise``: ``(u - w/2) / (min(w, h) / 2)``) with scores.
    Raises ``InvalidInput`` naming ``field`` when no frame's 2D pose has any extent (nothing to measure a size by).
    """
    half = min(image_size) / 2.0
    f = focal_px / half  # in the inputs' normalised units
    weights = inputs[..., 2].astype(np.float64)
    weights = np.where(weights.sum(axis=1, keepdims=True) > 0, weights, 1.0)  # undetected frames: the filled joints
    p = inputs[..., :2].astype(np.float64) - inputs[:, ROOT : ROOT + 1, :2]
    q = pose[..., :2].astype(np.float64) - pose[:, ROOT : ROOT + 1, :2]
    num = (weights[..., None] * p * p).sum(axis=(1, 2))
    den = (weights[..., None] * q * q).sum(axis=(1, 2))
    valid = (den > 0) & (num > 0)
    if not valid.any():
        raise InvalidInput(
            "root trajectory: the 2D pose has no size in any frame, so its distance cannot be estimated", field=field
        )
    scale = np.empty(len(pose), np.float64)
    scale[valid] = np.sqrt(num[valid] / den[valid])
    frames = np.arange(len(pose))
    scale[~valid] = np.interp(frames[~valid], frames[valid], scale[valid])
    root = inputs[:, ROOT, :2].astype(np.float64) / scale[:, None]
    out: Array = np.concatenate([root, (f / scale)[:, None]], axis=1).astype(np.float32)
    return out
