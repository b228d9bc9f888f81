"""Frames of a lifted sequence, side by side like MotionBERT's ``infer_wild.py`` output: the 2D input on the left
(over the video's frame when there is one), the 3D skeleton on the right, one colour per track.

The 3D view is an orthographic camera turned ``YAW`` degrees about the vertical and tilted ``PITCH`` degrees down,
looking at the middle of all tracks' joints over the whole sequence, with one scale for the whole sequence (so the
skeleton does not breathe), and a floor line at the lowest joint. Drawing is Pillow's; the images are RGB ``uint8``
arrays ``[H, W, 3]``, ready for a video writer (``service.client.render_command``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from service.motion.bvh import PARENTS

Floats = npt.NDArray[np.float64]
Pixels = npt.NDArray[np.uint8]

COLOURS: Final = ((66, 135, 245), (245, 130, 48), (60, 180, 75), (230, 25, 75), (145, 30, 180), (70, 240, 240))
BACKGROUND: Final = (18, 18, 24)
YAW, PITCH = 30.0, 15.0
COCO_EDGES: Final = ((5, 7), (7, 9), (6, 8), (8, 10), (5, 6), (5, 11), (6, 12), (11, 12), (11, 13), (13, 15),
                     (12, 14), (14, 16), (0, 5), (0, 6))  # fmt: skip
H36M_EDGES: Final = tuple((p, c) for c, p in enumerate(PARENTS) if p >= 0)
HALPE_EDGES: Final = (*COCO_EDGES, (17, 18), (18, 19), (19, 11), (19, 12), (15, 20), (15, 24), (16, 21), (16, 25))


@dataclass(frozen=True)
class Track2D3D:
    """One track: its first video frame, 2D keypoints ``[T, J, 2 or 3]`` (pixels) and 3D joints ``[T, 17, 3]``."""

    start: int
    keypoints: Floats
    joints3d: Floats


def edges_of(joints: int) -> tuple[tuple[int, int], ...]:
    """The bones to draw for a 2D layout of ``joints`` joints (H36M and COCO both have 17: the caller says)."""
    return HALPE_EDGES if joints == 26 else COCO_EDGES


def view(joints: Floats) -> Floats:
    """Camera-space joints (x right, y down, z away) seen by the 3D view's camera: ``[..., 2]`` (x right, y down)."""
    yaw, pitch = np.radians(YAW), np.radians(PITCH)
    x, y, z = joints[..., 0], joints[..., 1], joints[..., 2]
    x1, z1 = x * np.cos(yaw) - z * np.sin(yaw), x * np.sin(yaw) + z * np.cos(yaw)
    y1 = y * np.cos(pitch) - z1 * np.sin(pitch)
    out: Floats = np.stack([x1, y1], axis=-1)
    return out


def frames(
    tracks: Sequence[Track2D3D],
    total: int,
    *,
    size: int = 540,
    layout_2d: str = "coco",
    image_size: tuple[float, float] | None = None,
    video: Iterator[Pixels] | None = None,
) -> Iterator[Pixels]:
    """``total`` side-by-side images ``[size, 2 * size, 3]``, one per video frame (a track draws where it has
    frames). ``video``: the original frames (RGB), scaled into the left panel; ``image_size``: the video's size
    (default: the box around all 2D keypoints)."""
    projected = [view(t.joints3d) for t in tracks]
    every = np.concatenate([p.reshape(-1, 2) for p in projected])
    low, high = every.min(axis=0), every.max(axis=0)
    scale3 = 0.8 * size / max(float(np.max(high - low)), 1e-9)
    centre3 = (low + high) / 2
    floor = max(float(p[..., 1].max()) for p in projected)
    points2 = np.concatenate([t.keypoints[..., :2].reshape(-1, 2) for t in tracks])
    if image_size is not None:
        box_low, box_high = np.zeros(2), np.asarray(image_size, np.float64)
    else:
        box_low, box_high = points2.min(axis=0), points2.max(axis=0)
    scale2 = 0.9 * size / max(float(np.max(box_high - box_low)), 1e-9)
    centre2 = (box_low + box_high) / 2
    edges2 = H36M_EDGES if layout_2d == "h36m" else edges_of(tracks[0].keypoints.shape[1])
    for f in range(total):
        canvas = Image.new("RGB", (2 * size, size), BACKGROUND)
        if video is not None:
            background = next(video, None)
            if background is not None:
                canvas.paste(_fit(background, image_size, size), (0, 0))
        draw = ImageDraw.Draw(canvas)
        y_floor = size / 2 + (floor - centre3[1]) * scale3
        draw.line([(size, y_floor), (2 * size, y_floor)], fill=(70, 70, 80), width=2)
        draw.line([(size, 0), (size, size)], fill=(50, 50, 60), width=2)
        for n, (track, seen) in enumerate(zip(tracks, projected, strict=True)):
            t = f - track.start
            if not 0 <= t < len(track.joints3d):
                continue
            colour = COLOURS[n % len(COLOURS)]
            flat = (track.keypoints[t, :, :2] - centre2) * scale2 + size / 2
            shown = track.keypoints[t, :, 2] > 0 if track.keypoints.shape[-1] > 2 else np.ones(len(flat), bool)
            _skeleton(draw, flat, edges2, colour, shown)
            right = (seen[t] - centre3) * scale3 + size / 2 + np.array([size, 0.0])
            _skeleton(draw, right, H36M_EDGES, colour, np.ones(len(right), bool))
        yield np.asarray(canvas, np.uint8)


def _fit(image: Pixels, image_size: tuple[float, float] | None, size: int) -> Image.Image:
    """The video frame scaled as the 2D keypoints are (the image's box, centred in the panel)."""
    height, width = image.shape[:2]
    box = image_size or (float(width), float(height))
    scale = 0.9 * size / max(box)
    picture = Image.fromarray(image).resize((max(1, round(width * scale)), max(1, round(height * scale))))
    panel = Image.new("RGB", (size, size), BACKGROUND)
    panel.paste(picture, (round(size / 2 - box[0] * scale / 2), round(size / 2 - box[1] * scale / 2)))
    return panel


def _skeleton(
    draw: ImageDraw.ImageDraw,
    points: Floats,
    edges: Sequence[tuple[int, int]],
    colour: tuple[int, int, int],
    shown: npt.NDArray[np.bool_],
) -> None:
    for a, b in edges:
        if a < len(points) and b < len(points) and shown[a] and shown[b]:
            draw.line([tuple(points[a]), tuple(points[b])], fill=colour, width=3)
    for (x, y), visible in zip(points, shown, strict=True):
        if visible:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(235, 235, 235))
