"""``motionlift bench motion``: what the answer becomes, measured on the CMU fixture through a served model.

One server (``--model``, default the trained default), the fixture's first frames projected to 1080p
(``tests/data.project``'s camera: 4.5 m away, focal 1,200 px), and four tables:

- **BVH**: the file of ``Accept: application/x-bvh`` read back by ``bvhio`` (an independent parser, its forward
  kinematics) against the JSON answer: the worst angle between a bone and the answer's (limbs and head, then the
  torso's branches), and the joints' distance to the answer retargeted to the file's bone lengths and to the raw
  answer (millimetres at the mocap subject's height);
- **smoothing**: Gaussian noise of ``--noise-px`` on every 2D coordinate; jitter (mean |second difference| per joint)
  and mean distance to the noise-free answer, for none, savgol 9 / 15 and one-euro at its defaults;
- **metric scale**: ``subject_height_m`` set to the mocap subject's height by the rule of ``service.core.scale``;
  the answer's bone lengths against the mocap's;
- **root trajectory**: ``root: trajectory`` with that height, the pelvis against where the camera saw it, with the
  true focal length and with the assumed one.

Millimetres: the answer's units scaled by the mocap subject's own height through ``service.core.scale``. Needs the
dev extra (bvhio) for the BVH table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from service.bench.load import ServerProcess
from service.bench.table import render
from service.core.scale import CHAIN_FRACTION, chain
from service.motion import bvh

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "mocap_cmu_martial06.npz"
LIMBS = (2, 3, 5, 6, 8, 10, 12, 13, 15, 16)  # bones placed by a one-bone joint's rotation
TORSO = (1, 4, 7, 9, 11, 14)  # the branches of the pelvis and the thorax


def _camera_mm(truth_mm: Any) -> Any:
    """The mocap joints in the camera's space (mm; x right, y down, z away): the subject 4.5 m in front."""
    centred = truth_mm - truth_mm[:, :1].mean(axis=0, keepdims=True)
    return np.stack([centred[..., 0], -centred[..., 1], centred[..., 2] + 4500.0], axis=-1)


def _body(truth_mm: Any, noise_px: float, seed: int = 0) -> dict[str, Any]:
    """A /lift body of the mocap frames projected as the tests project them (pinhole, 1920 x 1080, focal 1200)."""
    camera = _camera_mm(truth_mm)
    x, y, z = camera[..., 0], camera[..., 1], camera[..., 2]
    pixels = np.stack([1200 * x / z + 960, 1200 * y / z + 540], axis=-1)
    pixels += np.random.default_rng(seed).normal(scale=noise_px, size=pixels.shape) if noise_px else 0.0
    keypoints = np.concatenate([pixels, np.full((*pixels.shape[:2], 1), 0.9)], axis=-1)
    return {"keypoints": keypoints.round(2).tolist(), "format": "h36m", "image_size": [1920, 1080]}


def _jitter(joints: Any) -> float:
    return float(np.linalg.norm(np.diff(joints, n=2, axis=0), axis=-1).mean())


def _bvh_table(url: str, body: dict[str, Any], answer: Any, mm: float) -> list[list[str]]:
    import bvhio

    text = httpx.post(f"{url}/lift", json=body, headers={"accept": "application/x-bvh"}, timeout=120).text
    with tempfile.NamedTemporaryFile("w", suffix=".bvh", delete=False) as f:
        f.write(text)
    root = bvhio.readAsHierarchy(f.name)
    Path(f.name).unlink()
    joints = {j.Name: j for j, _, _ in root.layout()}
    from service.core.keypoints import JOINT_NAMES

    world = np.zeros((len(answer), 17, 3))
    for t in range(len(answer)):
        root.loadPose(t)
        world[t] = [np.array(joints[name].PositionWorld) for name in JOINT_NAMES]
    points = bvh.to_bvh_axes(answer)
    lengths = bvh.bone_lengths(points)
    cm = bvh.scale_to_cm(lengths, bvh.DEFAULT_HEIGHT_M)
    retargeted = np.zeros_like(points)
    retargeted[:, 0] = points[:, 0]
    for child, parent in enumerate(bvh.PARENTS):
        if parent >= 0:
            direction = points[:, child] - points[:, parent]
            retargeted[:, child] = (
                retargeted[:, parent] + direction / np.linalg.norm(direction, axis=-1)[..., None] * lengths[child]
            )

    def angle(bones: tuple[int, ...]) -> float:
        worst = 0.0
        for child in bones:
            parent = bvh.PARENTS[child]
            a, b = world[:, child] - world[:, parent], points[:, child] - points[:, parent]
            cos = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
            worst = max(worst, float(np.degrees(np.arccos(np.clip(cos, -1, 1))).max()))
        return worst

    to_mm = mm / cm  # file centimetres -> answer units -> mm
    retarget_err = np.linalg.norm(world - retargeted * cm, axis=-1) * to_mm
    raw_err = np.linalg.norm(world - points * cm, axis=-1) * to_mm
    return [
        ["bone angle, limbs and head (max)", f"{angle(LIMBS):.2f}°"],
        ["bone angle, torso branches (max)", f"{angle(TORSO):.1f}°"],
        ["joints vs retargeted answer (median / max)", f"{np.median(retarget_err):.0f} / {retarget_err.max():.0f} mm"],
        ["joints vs raw answer (median / max)", f"{np.median(raw_err):.0f} / {raw_err.max():.0f} mm"],
    ]


def _trajectory_table(url: str, body: dict[str, Any], truth_mm: Any, height_m: float) -> list[list[str]]:
    """``root: trajectory`` in metres against where the camera saw the mocap pelvis, with the true focal length and
    with the assumed one (the image diagonal)."""
    pelvis = _camera_mm(truth_mm)[:, 0]
    rows = []
    for name, extra in (("focal given (1200 px)", {"focal_length_px": 1200}), ("focal assumed (diagonal)", {})):
        asked = {**body, "root": "trajectory", "subject_height_m": round(height_m, 3), **extra}
        answer = np.asarray(httpx.post(f"{url}/lift", json=asked, timeout=120).json()["joints3d"], np.float64)
        placed = answer[:, 0] * 1000.0
        depth = np.abs(placed[:, 2] - pelvis[:, 2]) / pelvis[:, 2] * 100
        position = np.linalg.norm(placed - pelvis, axis=-1)
        sideways = np.linalg.norm(placed[:, :2] - pelvis[:, :2], axis=-1)
        rows.append([name, f"{np.median(depth):.1f}% / {depth.max():.1f}%", f"{np.median(sideways):.0f} mm",
                     f"{np.median(position):.0f} mm"])  # fmt: skip
    return rows


def run(model: Path, *, frames: int, noise_px: float) -> str:
    with np.load(FIXTURE) as z:
        truth_mm = z["joints3d_mm"][:frames].astype(np.float64)
    height_m = chain((truth_mm / 1000.0).astype(np.float32)) / CHAIN_FRACTION
    server = ServerProcess(model, [])
    try:
        server.wait_ready()
        url = server.url
        clean = _body(truth_mm, 0.0)
        reference = np.asarray(httpx.post(f"{url}/lift", json=clean, timeout=120).json()["joints3d"], np.float64)
        mm = 1000.0 * CHAIN_FRACTION * height_m / chain(reference.astype(np.float32))
        lines = [f"{frames} frames of the CMU fixture, subject {height_m:.2f} m; {model}"]
        lines += [
            "",
            "BVH (Accept: application/x-bvh, read back by bvhio)",
            render(["", ""], _bvh_table(url, clean, reference, mm)),
        ]
        noisy = _body(truth_mm, noise_px, seed=1)
        rows = [["noise-free answer", f"{_jitter(reference) * mm:.2f}", "0"]]
        for name, extra in (("none", {}), ("savgol 9", {"smoothing": "savgol"}),
                            ("savgol 15", {"smoothing": "savgol", "smoothing_window": 15}),
                            ("one-euro (defaults)", {"smoothing": "one-euro"})):  # fmt: skip
            answer = np.asarray(httpx.post(f"{url}/lift", json={**noisy, **extra}, timeout=120).json()["joints3d"])
            distance = np.linalg.norm(answer - reference, axis=-1).mean() * mm
            rows.append([name, f"{_jitter(answer) * mm:.2f}", f"{distance:.1f}"])
        lines += ["", f"smoothing ({noise_px:g} px noise)", render(["", "jitter mm/frame²", "to noise-free mm"], rows)]
        metric = httpx.post(f"{url}/lift", json={**clean, "subject_height_m": round(height_m, 3)}, timeout=120).json()
        metres = np.asarray(metric["joints3d"], np.float64)
        truth = truth_mm / 1000.0
        errors = [abs(bvh.bone_lengths(metres)[j] / bvh.bone_lengths(truth)[j] - 1) for j in range(1, 17)]
        lines += ["", f"metric scale (subject_height_m {height_m:.3f})",
                  render(["", ""], [["bone length error (median / max)",
                                     f"{100 * np.median(errors):.1f}% / {100 * max(errors):.1f}%"]])]  # fmt: skip
        lines += ["", "root trajectory (subject_height_m as above; mocap pelvis 4.5 m from the camera)",
                  render(["", "distance error (median / max)", "x, y error (median)", "3D error (median)"],
                         _trajectory_table(url, clean, truth_mm, height_m))]  # fmt: skip
        return "\n".join(lines)
    finally:
        server.stop()


def add_command(bench_sub: Any) -> None:
    """Add ``motion`` to the ``motionlift bench`` subparsers."""
    from service.config import DEFAULT_MODEL

    bench = bench_sub.add_parser(
        "motion", help="BVH fidelity, smoothing, metric scale and root trajectory on the CMU fixture"
    )
    bench.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="TorchScript model file")
    bench.add_argument("--frames", type=int, default=243, help="frames of the fixture")
    bench.add_argument("--noise-px", type=float, default=5.0, help="2D noise for the smoothing table")
    bench.set_defaults(bench_run=_command)


def _command(args: Any) -> int:
    print(run(args.model, frames=args.frames, noise_px=args.noise_px))
    return 0
