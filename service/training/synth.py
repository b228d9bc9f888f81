"""Synthetic 2D inputs from 3D motion capture: virtual cameras, detector-like noise, serving normalisation.

A window of world joints (mm, Y up) is seen by a random static pinhole camera and becomes what the service
would receive from a 2D detector, normalised exactly as the serving path normalises it (``service.core.keypoints``:
``normalise_pixel``, the default when the image size is known, or ``normalise_crop``). The training target is
MotionBERT's Human3.6M convention ``joint3d_image`` (``lib/data/datareader_h36m.py``; MOTIONBERT.md): x, y are
the clean image projections in the input's normalisation, z is the depth relative to the root of the same
frame in the same scale, converted to pixels with the per-frame 2.5D factor ``Z_root / f`` (millimetres per
pixel at the subject's depth). Multiplying a normalised output by ``mm_per_unit`` gives millimetres, as
MotionBERT's evaluation multiplies de-normalised pixels by ``2.5d_factor``.

Camera ranges (why; ``CAMERAS``): image sizes of phones, webcams and Human3.6M; focal lengths from wide action
cameras to short tele (focal / half the short side in 1.3..4.5; Human3.6M is ~2.3); the subject fills 25-85% of
the short side, anywhere near the centre; yaw all round, elevation from slightly below to well above
("standard"). "varied" widens every range and rolls the camera (a phone held askew); "unseen" lies outside
"varied" on every axis (wider lens, higher camera, more roll), to measure what cameras never trained on cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.core.keypoints import FLIP_PERM, normalise_crop, normalise_pixel

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

IMAGE_SIZES: tuple[tuple[int, int], ...] = (
    (1920, 1080), (1280, 720), (1080, 1920), (720, 1280), (640, 480), (1000, 1000), (1000, 1002), (3840, 2160),
)  # fmt: skip
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)  # H36M-17 kinematic tree
# Bone of each joint -> a shared scale for left/right twins (hip, knee, ankle, shoulder, elbow, wrist).
_BONE_GROUP = (0, 1, 2, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 8, 9, 10)
# Detectors are less precise at the extremities and at joints that are not visible landmarks (pelvis, spine).
JOINT_NOISE = np.array([1.3, 1.3, 1.0, 1.2, 1.3, 1.0, 1.2, 1.5, 1.0, 0.8, 1.0, 1.0, 1.1, 1.4, 1.0, 1.1, 1.4])
BODY_MM = 1750.0  # nominal standing height used to place the camera
MIN_DEPTH_MM = 800.0


@dataclass(frozen=True)
class Camera:
    """A static pinhole camera: ``P_cam = rotation @ (P_world - centre) + shift`` (x right, y down, z forward);
    pixels ``u = focal * x / z + cx``, ``v = focal * y / z + cy``."""

    width: int
    height: int
    focal: float
    cx: float
    cy: float
    rotation: F64
    centre: F64
    shift: F64


@dataclass(frozen=True)
class CameraRanges:
    """What a random camera is drawn from: ``focal`` = focal length / half the image's short side
    (log-uniform), ``elevation`` in degrees (uniform), ``roll`` = |roll about the optical axis| in degrees
    (uniform, either sign), ``size`` = the body's height / half the short side (uniform)."""

    focal: tuple[float, float] = (1.3, 4.5)
    elevation: tuple[float, float] = (-5.0, 35.0)
    roll: tuple[float, float] = (0.0, 0.0)
    size: tuple[float, float] = (0.5, 1.7)


CAMERAS: dict[str, CameraRanges] = {
    "standard": CameraRanges(),
    "varied": CameraRanges(focal=(1.1, 5.5), elevation=(-10.0, 45.0), roll=(0.0, 15.0), size=(0.4, 1.8)),
    "unseen": CameraRanges(focal=(0.85, 1.1), elevation=(45.0, 60.0), roll=(15.0, 25.0)),
}


@dataclass(frozen=True)
class Noise:
    """2D detector noise. ``sigma``: std of the jitter as a fraction of the person's size in pixels;
    per joint-frame rates of ``outlier`` (a large jump), ``swap`` (left/right confusion) and ``missing``
    (score 0 at pixel (0, 0)); ``occlusion``: chance that one joint is missing over a span of frames;
    ``scored``: False sends score 1 everywhere (callers without scores)."""

    sigma: float = 0.0
    outlier: float = 0.0
    swap: float = 0.0
    missing: float = 0.0
    occlusion: float = 0.0
    scored: bool = True


CLEAN = Noise()
# The fixed "noisy 2D" of the evaluation: about a good 2D detector's error (~2% of the body size).
EVAL_NOISE = Noise(sigma=0.02, outlier=0.005, swap=0.002, missing=0.01, occlusion=0.1)


@dataclass(frozen=True)
class View:
    """One window as the model sees it. ``inputs`` ``[T, 17, 3]`` (x, y, score) and ``target`` ``[T, 17, 3]``
    normalised; ``mm_per_unit`` ``[T]``; ``camera_mm`` ``[T, 17, 3]`` the true camera-space joints."""

    inputs: F32
    target: F32
    mm_per_unit: F32
    camera_mm: F64


def augment(rng: np.random.Generator, joints: F64, bone_sigma: float = 0.06, mirror: bool = True) -> F64:
    """Bone-length augmentation (each bone scaled by ``exp(N(0, bone_sigma))``, left/right twins alike) and,
    half of the time, a mirror image (world X negated, left and right joints swapped)."""
    scale = np.exp(rng.normal(0.0, bone_sigma, 11))[list(_BONE_GROUP)]
    out = joints.copy()
    for j in range(1, 17):
        p = PARENTS[j]
        out[:, j] = out[:, p] + (joints[:, j] - joints[:, p]) * scale[j]
    if mirror and rng.random() < 0.5:
        out = out[:, list(FLIP_PERM)]
        out[..., 0] = -out[..., 0]
    return out


def random_camera(rng: np.random.Generator, joints: F64, ranges: CameraRanges = CAMERAS["standard"]) -> Camera:
    """A camera drawn from ``ranges`` that sees the window ``joints`` ``[T, 17, 3]`` (world mm, Y up); every
    joint in front of it. Without roll the draws are those of the first model's training and evaluation, so
    the standard held-out cameras stay the same."""
    width, height = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
    half = min(width, height) / 2.0
    focal = math.exp(rng.uniform(math.log(ranges.focal[0]), math.log(ranges.focal[1]))) * half
    size = rng.uniform(*ranges.size)  # the body's height in units of half the short side
    distance = float(np.clip(BODY_MM * (focal / half) / size, 1500.0, 20000.0))
    yaw, elev = rng.uniform(0.0, 2.0 * math.pi), math.radians(rng.uniform(*ranges.elevation))
    forward = np.array([math.cos(elev) * math.sin(yaw), -math.sin(elev), math.cos(elev) * math.cos(yaw)])
    right = np.cross([0.0, -1.0, 0.0], forward)
    right /= np.linalg.norm(right)
    rotation = np.stack([right, np.cross(forward, right), forward])
    look = joints[:, 0].mean(axis=0) + np.array([0.0, rng.uniform(-200.0, 200.0), 0.0])
    centre = look - distance * forward
    # The subject is off-centre by a few tenths of the image: a sideways camera shift, not an image shift.
    du = np.clip(rng.normal(0.0, 0.12), -0.3, 0.3) * width
    dv = np.clip(rng.normal(0.0, 0.08), -0.2, 0.2) * height
    shift = np.array([du * distance / focal, dv * distance / focal, 0.0])
    depth = ((joints - centre) @ rotation.T)[..., 2].min()
    if depth < MIN_DEPTH_MM:  # walked towards the camera: step back
        shift[2] = MIN_DEPTH_MM - depth
    cx = width / 2.0 + rng.uniform(-0.02, 0.02) * width
    cy = height / 2.0 + rng.uniform(-0.02, 0.02) * height
    if ranges.roll[1] > 0.0:  # about the optical axis: depths (the z row) and so the step back above stay valid
        angle = math.radians(rng.uniform(*ranges.roll)) * (1.0 if rng.random() < 0.5 else -1.0)
        c, s = math.cos(angle), math.sin(angle)
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ rotation
    return Camera(width, height, focal, cx, cy, rotation, centre, shift)


def project(camera: Camera, joints: F64) -> tuple[F64, F64, F64, F64]:
    """``(pixels [T,17,2], target_px [T,17,3], factor [T], camera_mm [T,17,3])``: the projection, the
    joint3d_image target in pixels (z = ``(Z - Z_root) / factor``) and the 2.5D factor ``Z_root / focal``."""
    cam = (joints - camera.centre) @ camera.rotation.T + camera.shift
    z = cam[..., 2]
    uv = camera.focal * cam[..., :2] / z[..., None] + [camera.cx, camera.cy]
    factor = z[:, 0] / camera.focal
    target = np.concatenate([uv, ((z - z[:, :1]) / factor[:, None])[..., None]], axis=-1)
    return uv, target, factor, cam


def corrupt(rng: np.random.Generator, uv: F64, noise: Noise) -> F64:
    """Detector-like keypoints ``[T, 17, 3]`` (pixels, score) from exact projections ``uv`` ``[T, 17, 2]``."""
    frames = len(uv)
    extent = uv.max(axis=1) - uv.min(axis=1)
    size = float(np.median(extent.max(axis=-1))) + 1.0
    err = np.zeros_like(uv)
    if noise.sigma > 0:
        sigma = noise.sigma * size * JOINT_NOISE[:, None]
        white = rng.normal(size=uv.shape)
        # Temporally correlated drift: a moving average over 5 frames, rescaled to unit variance.
        raw = rng.normal(size=(frames + 4, 17, 2))
        drift = np.stack([raw[i : i + frames] for i in range(5)]).sum(axis=0) / math.sqrt(5.0)
        bias = rng.normal(size=(1, 17, 2))  # the detector's idea of a joint differs from the marker set's
        err = sigma * (0.6 * white + 0.6 * drift + 0.5 * bias)
    out = uv + err
    if noise.swap > 0:
        swap = rng.random((frames, 17)) < noise.swap
        perm = np.array(FLIP_PERM)
        out = np.where(swap[..., None], out[:, perm], out)
    if noise.outlier > 0:
        jump = rng.random((frames, 17)) < noise.outlier
        out = out + jump[..., None] * rng.normal(0.0, 0.15 * size, uv.shape)
    dist = np.linalg.norm(out - uv, axis=-1) / size
    score = np.clip(rng.uniform(0.85, 0.98) - 3.0 * dist + rng.normal(0.0, 0.04, dist.shape), 0.05, 1.0)
    missing = rng.random((frames, 17)) < noise.missing
    if rng.random() < noise.occlusion and frames > 1:
        joint, length = int(rng.integers(17)), int(rng.integers(1, max(2, frames // 2)))
        start = int(rng.integers(0, frames - length + 1))
        missing[start : start + length, joint] = True
    if not noise.scored or noise == CLEAN:
        score = np.ones_like(score)
    score[missing] = 0.0
    out[missing] = 0.0
    return np.concatenate([out, score[..., None]], axis=-1)


def normalise(keypoints: F64, target_px: F64, factor: F64, camera: Camera, mode: str) -> tuple[F32, F32, F32]:
    """``(inputs, target, mm_per_unit)`` in the serving normalisation ``mode`` ("pixel" or "crop").

    Inputs go through ``service.core.keypoints`` itself; the target gets the same affine map on x, y and the same
    scale on z. Raises ``ValueError`` where the serving path would refuse (crop mode with < 4 scored joints).
    """
    if mode == "pixel":
        inputs = normalise_pixel(keypoints, camera.width, camera.height)
        half = min(camera.width, camera.height) / 2.0
        offset = np.array([camera.width / 2.0, camera.height / 2.0])
    elif mode == "crop":
        inputs = normalise_crop(keypoints)
        valid = keypoints[keypoints[..., 2] != 0][:, :2]
        lo, hi = valid.min(axis=0), valid.max(axis=0)
        half = max(hi[0] - lo[0], hi[1] - lo[1]) / 2.0
        offset = (lo + hi) / 2.0  # the centre of the square: ((xy - corner) / scale - 0.5) * 2 = (xy - mid) / half
    else:
        raise ValueError(f"unknown normalisation {mode!r}")
    target = np.empty_like(target_px)
    target[..., :2] = (target_px[..., :2] - offset) / half
    target[..., 2] = target_px[..., 2] / half
    return inputs, target.astype(np.float32), (factor * half).astype(np.float32)


def view(rng: np.random.Generator, joints: F64, camera: Camera, noise: Noise, mode: str) -> View:
    """The window ``joints`` (world mm) through ``camera`` with ``noise``, normalised in ``mode``."""
    uv, target_px, factor, cam = project(camera, joints)
    kp = corrupt(rng, uv, noise)
    inputs, target, mm = normalise(kp, target_px, factor, camera, mode)
    return View(inputs, target, mm, cam)


def random_noise(rng: np.random.Generator, clean_fraction: float = 0.2) -> Noise:
    """The training mix: clean 2D for ``clean_fraction`` of windows, else a random detector's quality."""
    if rng.random() < clean_fraction:
        return CLEAN
    return Noise(
        sigma=rng.uniform(0.0, 0.04),
        outlier=rng.uniform(0.0, 0.02),
        swap=rng.uniform(0.0, 0.01),
        missing=rng.uniform(0.0, 0.04),
        occlusion=0.3,
        scored=rng.random() > 0.1,
    )


def training_views(
    rng: np.random.Generator,
    windows: F64,
    crop_fraction: float = 0.3,
    clean_fraction: float = 0.2,
    cameras: CameraRanges = CAMERAS["standard"],
) -> tuple[F32, F32, F32]:
    """A training batch from world windows ``[B, T, 17, 3]``: augmented, a random camera from ``cameras``,
    random noise, pixel or (``crop_fraction`` of the time) crop normalisation. Returns
    ``(inputs, target, mm_per_unit)``."""
    views = []
    for joints in windows:
        joints = augment(rng, joints)
        mode = "crop" if rng.random() < crop_fraction else "pixel"
        camera = random_camera(rng, joints, cameras)
        try:
            views.append(view(rng, joints, camera, random_noise(rng, clean_fraction), mode))
        except ValueError:  # almost every joint missing: the service would refuse crop mode; use pixel
            views.append(view(rng, joints, camera, CLEAN, "pixel"))
    return (
        np.stack([v.inputs for v in views]),
        np.stack([v.target for v in views]),
        np.stack([v.mm_per_unit for v in views]),
    )
