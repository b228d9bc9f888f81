"""Held-out evaluation in millimetres: MPJPE, P-MPJPE and acceleration error, per action, clean and noisy 2D.

Protocol (MotionBERT's, ``train.py`` ``evaluate`` with ``datareader_h36m.py``): each held-out sequence (HDM05
actors mm and tr, at ~30 fps) is seen by one seeded random virtual camera (the same for every model and both
2D conditions), lifted the way the service lifts it (whole-sequence pixel normalisation, windows of the
model's length overlapping by a quarter and cross-faded, flip test-time augmentation), de-normalised to
millimetres with the known camera (per frame: normalisation scale x 2.5D factor), made root-relative and
compared with the ground truth in the same 2.5D convention. ``metric_mm`` compares with the true camera-space
joints instead: it adds the weak-perspective gap of the 2.5D convention (``floor_mm``: the ground truth's own
2.5D pose against the metric one).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from service.core import windows
from service.core.keypoints import flip as flip_pose
from service.training import synth
from service.training.metrics import accel_error, mpjpe, p_mpjpe, root_relative
from service.training.mocap import Sequence, load_mocap, subsample

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
CONDITIONS: dict[str, synth.Noise] = {"clean": synth.CLEAN, "noisy": synth.EVAL_NOISE}


def lift(model: nn.Module, inputs: F32, window: int, *, flip: bool = True) -> F32:
    """Lift one normalised sequence ``[T, 17, 3]`` as the service does: ``windows.plan`` with overlap
    ``window // 4``, optional flip averaging, ``windows.merge`` (not root-relative). Returns ``[T, 17, 3]``."""
    spans = windows.plan(len(inputs), window, window // 4)
    batch = np.stack([inputs[s:e] for s, e in spans])
    with torch.inference_mode():
        out = model(torch.from_numpy(batch)).numpy()
        if flip:
            mirrored = model(torch.from_numpy(flip_pose(batch))).numpy()
            out = (out + flip_pose(mirrored)) * np.float32(0.5)
    return windows.merge(list(out), spans, len(inputs), rootrel=False)


@dataclass(frozen=True)
class Case:
    """One held-out sequence seen by its camera in one 2D condition and normalisation."""

    seq: Sequence
    view: synth.View


def cases(
    sequences: list[Sequence], seed: int, condition: str, mode: str = "pixel", cameras: str = "standard"
) -> list[Case]:
    """The held-out views: camera (from ``synth.CAMERAS[cameras]``) and noise seeded per sequence (index),
    identical for every model."""
    out = []
    for i, seq in enumerate(sequences):
        world = subsample(seq)
        cam_rng = np.random.default_rng([seed, i])
        noise_rng = np.random.default_rng([seed, i, 1 + list(CONDITIONS).index(condition)])
        camera = synth.random_camera(cam_rng, world, synth.CAMERAS[cameras])
        out.append(Case(seq, synth.view(noise_rng, world, camera, CONDITIONS[condition], mode)))
    return out


def score(pred: F32, case: Case) -> dict[str, F64]:
    """Per-frame errors (mm) of a normalised prediction ``[T, 17, 3]`` for ``case``."""
    mm = case.view.mm_per_unit[:, None, None].astype(np.float64)
    p = root_relative(pred.astype(np.float64) * mm)
    g = root_relative(case.view.target.astype(np.float64) * mm)
    metric = root_relative(case.view.camera_mm)
    return {
        "mpjpe": mpjpe(p, g),
        "p_mpjpe": p_mpjpe(p, g),
        "accel": accel_error(p, g),
        "metric_mm": mpjpe(p, metric),
        "floor_mm": mpjpe(g, metric),
    }


def _summary(parts: list[dict[str, F64]]) -> dict[str, float]:
    """Frame-weighted means over sequences (acceleration over the frames that have one)."""
    keys = parts[0].keys()
    out = {k: float(np.concatenate([p[k] for p in parts]).mean()) for k in keys}
    out["frames"] = float(sum(len(p["mpjpe"]) for p in parts))
    return out


def evaluate_model(
    model: nn.Module,
    window: int,
    data: str,
    *,
    seed: int = 0,
    flip: bool = True,
    modes: tuple[str, ...] = ("pixel",),
    cameras: tuple[str, ...] = ("standard",),
) -> dict[str, Any]:
    """Errors of ``model`` on the held-out split of ``data``, seen by cameras from each of ``cameras`` (names
    of ``synth.CAMERAS``).

    Returns ``{"<mode>/<condition>[/<cameras>]": {"all": {...}, "actions": {action: {...}}}}`` (the camera
    set named unless standard) with, per group, the frame-weighted ``mpjpe``, ``p_mpjpe``, ``accel`` (mm,
    mm/frame^2), ``metric_mm``, ``floor_mm`` and ``frames``. Raises ``FileNotFoundError`` / ``ValueError``
    for missing data and ``ValueError`` for an unknown camera set.
    """
    unknown = [c for c in cameras if c not in synth.CAMERAS]
    if unknown:
        raise ValueError(f"unknown cameras {', '.join(unknown)}: use {', '.join(synth.CAMERAS)}")
    sequences = load_mocap(data, "test")
    report: dict[str, Any] = {}
    for camera_set in cameras:
        for mode in modes:
            for condition in CONDITIONS:
                key = f"{mode}/{condition}" + ("" if camera_set == "standard" else f"/{camera_set}")
                report[key] = _errors(model, window, cases(sequences, seed, condition, mode, camera_set), flip)
    return report


def _errors(model: nn.Module, window: int, views: list[Case], flip: bool) -> dict[str, Any]:
    """Per action and overall errors of ``model`` on ``views``."""
    per_action: dict[str, list[dict[str, F64]]] = defaultdict(list)
    for case in views:
        per_action[case.seq.action].append(score(lift(model, case.view.inputs, window, flip=flip), case))
    return {
        "all": _summary([p for parts in per_action.values() for p in parts]),
        "actions": {a: _summary(parts) for a, parts in sorted(per_action.items())},
    }


def markdown(reports: dict[str, dict[str, Any]], key: str = "pixel/clean", per_action: bool = True) -> str:
    """A Markdown table: one row per action (and "all") for each model, MPJPE / P-MPJPE / accel."""
    names = list(reports)
    head = "| action | frames | " + " | ".join(f"{n} MPJPE / P-MPJPE / accel" for n in names) + " |"
    rows = [head, "|" + " --- |" * (2 + len(names))]
    first = reports[names[0]][key]
    groups = [*(first["actions"] if per_action else []), "all"]
    for group in groups:
        cells = []
        for n in names:
            r = reports[n][key]["all" if group == "all" else "actions"]
            m = r if group == "all" else r[group]
            cells.append(f"{m['mpjpe']:.1f} / {m['p_mpjpe']:.1f} / {m['accel']:.1f}")
        m0 = first["all"] if group == "all" else first["actions"][group]
        label = "**all**" if group == "all" else group
        rows.append(f"| {label} | {int(m0['frames'])} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
