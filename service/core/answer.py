"""From one track's window outputs to its answer: merged, smoothed, in pixels, in metres, on its trajectory.

The order matters and is the contract: windows are merged (cross-faded) about the pelvis or over the image as
``root`` asks, smoothed (``service.core.smoothing``), then the pixels are derived (they keep the image's scale, and
overlay the 2D input even when the joints follow a trajectory), then metres (``service.core.scale``), then the
pelvis is placed on its trajectory (``service.core.trajectory``, in those metres; the path smoothed as the joints).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.core import keypoints, scale, selection, smoothing, trajectory, windows
from service.core.backend import Array
from service.core.options import LiftOptions
from service.core.results import TrackResult
from service.core.tracks import Track
from service.errors import BackendError


def track(
    source: Track, outputs: Sequence[Array], spans: list[tuple[int, int]], inputs: Array, options: LiftOptions
) -> TrackResult:
    """The answer of ``source`` from its windows' ``outputs`` (over ``spans``) and its normalised ``inputs``
    ``[T, 17, 3]``. Raises ``BackendError`` when the model answered values that are not finite (never a 200 with
    impossible numbers), ``InvalidInput`` when a trajectory has nothing to measure (``trajectory.place``)."""
    frames, own = len(inputs), list(outputs)
    root = options.resolved_root()
    joints = smoothing.smooth(windows.merge(own, spans, frames, rootrel=root != "image"), options)
    pixels = None
    if options.resolved_pixels():
        assert options.image_size is not None
        overlay = joints  # a trajectory's pixels overlay the image as the default answer's do
        if root == "trajectory":
            overlay = smoothing.smooth(windows.merge(own, spans, frames, rootrel=False), options)
        pixels = keypoints.denormalise_pixel(overlay, *options.image_size)
    if options.subject_height_m is not None:  # metres: after the pixels, which keep the image's scale
        joints = scale.metric(joints, options.subject_height_m)
    if root == "trajectory":  # after the metres, so the trajectory is in them too
        focal = options.resolved_focal_px()
        assert options.image_size is not None and focal is not None  # checked: a trajectory needs image_size
        path = trajectory.place(joints, inputs, options.image_size, focal, field=source.field)
        joints = joints + smoothing.smooth(path[:, None], options)
    for array in (joints, pixels):
        if array is not None and not np.isfinite(array).all():
            raise BackendError(f"the model answered values that are not finite for track {source.id!r}")
    filled = tuple(source.start + int(i) for i in np.flatnonzero(~selection.detected(source.keypoints)))
    return TrackResult(source.id, joints, pixels, source.start, filled)
