"""Training losses (torch) and evaluation metrics (numpy) for 3D pose lifting.

Definitions follow MotionBERT (``lib/model/loss.py``): MPJPE is the mean Euclidean distance per joint; N-MPJPE
first scales the prediction by the least-squares factor onto the target; the velocity loss is the MPJPE of
first differences over time; P-MPJPE is MPJPE after a Procrustes alignment (rotation, scale, translation, no
reflection). Its 3D fine-tuning configs weigh them 1 (MPJPE), 0.5 (N-MPJPE) and 20 (velocity). The
acceleration error is the mean distance between second differences (mm / frame^2), as in the video pose
literature (e.g. Kanazawa et al., "Learning 3D Human Dynamics from Video", 2019).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

F64 = npt.NDArray[np.float64]

W_SCALE = 0.5
W_VELOCITY = 20.0


def mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error over every leading dimension of ``[..., 17, 3]``."""
    out: torch.Tensor = torch.linalg.vector_norm(pred - target, dim=-1).mean()
    return out


def n_mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJPE after scaling each frame of ``pred`` ``[B, T, J, 3]`` by its least-squares factor onto target."""
    num = (pred * target).sum(dim=(-1, -2), keepdim=True)
    den = (pred * pred).sum(dim=(-1, -2), keepdim=True).clamp_min(1e-9)
    return mpjpe_loss(pred * (num / den), target)


def velocity_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJPE of the frame-to-frame differences of ``[B, T, J, 3]`` (zero when T == 1)."""
    if pred.shape[1] < 2:
        return pred.new_zeros(())
    return mpjpe_loss(pred[:, 1:] - pred[:, :-1], target[:, 1:] - target[:, :-1])


def lifting_loss(pred: torch.Tensor, target: torch.Tensor, mm_per_unit: torch.Tensor) -> dict[str, torch.Tensor]:
    """MotionBERT's 3D loss on ``[B, T, 17, 3]`` outputs, in millimetres.

    Both poses are scaled per frame by ``mm_per_unit`` ``[B, T]`` first, so every window counts by its error
    in millimetres whatever its size on the image (a far subject is not cheaper). Returns the terms and their
    weighted sum under "loss".
    """
    scale = mm_per_unit[..., None, None]
    p, t = pred * scale, target * scale
    terms = {"mpjpe": mpjpe_loss(p, t), "n_mpjpe": n_mpjpe_loss(p, t), "velocity": velocity_loss(p, t)}
    terms["loss"] = terms["mpjpe"] + W_SCALE * terms["n_mpjpe"] + W_VELOCITY * terms["velocity"]
    return terms


def root_relative(x: F64) -> F64:
    """``[..., 17, 3]`` minus its root (joint 0)."""
    out: F64 = x - x[..., :1, :]
    return out


def mpjpe(pred: F64, gt: F64) -> F64:
    """Per-frame MPJPE of ``[T, 17, 3]`` poses (same units as the input)."""
    out: F64 = np.linalg.norm(pred - gt, axis=-1).mean(axis=-1)
    return out


def p_mpjpe(pred: F64, gt: F64) -> F64:
    """Per-frame MPJPE after aligning each predicted frame to the ground truth by a similarity transform
    (Procrustes: rotation without reflection, isotropic scale, translation)."""
    mu_p, mu_g = pred.mean(axis=1, keepdims=True), gt.mean(axis=1, keepdims=True)
    p0, g0 = pred - mu_p, gt - mu_g
    norm_p = np.linalg.norm(p0, axis=(1, 2), keepdims=True) + 1e-12
    norm_g = np.linalg.norm(g0, axis=(1, 2), keepdims=True) + 1e-12
    p0, g0 = p0 / norm_p, g0 / norm_g
    u, s, vt = np.linalg.svd(np.swapaxes(g0, 1, 2) @ p0)  # H = G^T P, [T, 3, 3]
    v = np.swapaxes(vt, 1, 2)
    sign = np.sign(np.linalg.det(v @ np.swapaxes(u, 1, 2)))  # flip the last axis where R would reflect
    v[:, :, -1] *= sign[:, None]
    s[:, -1] *= sign
    rot = v @ np.swapaxes(u, 1, 2)
    scale = s.sum(axis=1)[:, None, None] * norm_g / norm_p
    aligned = scale * (pred - mu_p) @ rot + mu_g
    return mpjpe(aligned, gt)


def accel_error(pred: F64, gt: F64) -> F64:
    """Per-frame acceleration error of ``[T, 17, 3]`` (frames 1..T-2; empty when T < 3), units / frame^2."""
    if len(pred) < 3:
        return np.zeros(0)
    acc_p = pred[:-2] - 2 * pred[1:-1] + pred[2:]
    acc_g = gt[:-2] - 2 * gt[1:-1] + gt[2:]
    out: F64 = np.linalg.norm(acc_p - acc_g, axis=-1).mean(axis=-1)
    return out
