"""Writing and loading trained lifters (the DSTformer or the single-frame MLP baseline) as safetensors + JSON,
in the format ``service.model.trained`` describes (which serving reads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from service.model.checkpoint import count_parameters
from service.model.dstformer import DSTformer
from service.model.trained import read_spec
from service.training.baseline import FrameMLP

ARCHES = ("dstformer", "mlp")


def build_lifter(arch: str, hparams: dict[str, Any]) -> nn.Module:
    """A freshly initialised ``DSTformer`` or ``FrameMLP``; ``ValueError`` for an unknown arch or bad sizes."""
    try:
        if arch == "dstformer":
            return DSTformer(**hparams)
        if arch == "mlp":
            return FrameMLP(**hparams)
    except TypeError as exc:
        raise ValueError(f"invalid {arch} hyperparameters: {exc}") from exc
    raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHES}")


def save_weights(model: nn.Module, path: Path, spec: dict[str, Any], *, fp16: bool) -> None:
    """Write ``path`` (.safetensors) and its JSON description (same stem, .json) from ``spec`` plus the
    parameter count and precision. Parent directories are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if fp16 else torch.float32
    state = {k: v.detach().to(dtype).contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt", "arch": str(spec["arch"])})
    full = {**spec, "params": count_parameters(model), "precision": "fp16" if fp16 else "fp32"}
    path.with_suffix(".json").write_text(json.dumps(full, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_lifter(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The lifter stored at ``path`` (.safetensors, its .json beside it) in fp32, eval mode, no gradients.

    Raises ``FileNotFoundError`` and ``ValueError`` (bad description, weights that do not fit).
    """
    spec = read_spec(path)
    weights = Path(path).with_suffix(".safetensors")
    if not weights.is_file():
        raise FileNotFoundError(f"weights not found: {weights}")
    model = build_lifter(str(spec["arch"]), dict(spec["hyperparams"]))
    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{weights} does not fit its description: {exc}") from exc
    model.requires_grad_(False)
    return model.eval(), spec
