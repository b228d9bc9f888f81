"""Trained lifter weights on disk: a safetensors file and a JSON description beside it.

``NAME.safetensors`` holds the state dict (official DSTformer parameter names, fp32 or fp16);
``NAME.json`` says how to rebuild the module and how it was made::

    {"arch": "dstformer" | "mlp", "config": "default", "hyperparams": {...}, "window": 81,
     "params": 294023, "precision": "fp16", "training": {...}, "heldout": {...}}

safetensors (not pickle) because it cannot carry code and loads without trusting the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from service.model.checkpoint import count_parameters
from service.model.dstformer import DSTformer
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


def read_spec(path: str | Path) -> dict[str, Any]:
    """The JSON description of a weights file (give either the .json or the .safetensors path).

    Raises ``FileNotFoundError`` if missing and ``ValueError`` if it lacks arch, hyperparams or window.
    """
    path = Path(path).with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(f"weights description not found: {path}")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if not isinstance(spec, dict) or not {"arch", "hyperparams", "window"} <= set(spec):
        raise ValueError(f"{path}: expected a JSON object with arch, hyperparams and window")
    if not isinstance(spec["hyperparams"], dict) or not isinstance(spec["window"], int):
        raise ValueError(f"{path}: hyperparams must be an object and window an integer")
    return spec


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


def resolve_export_config(config: str) -> tuple[str, dict[str, Any], int | None] | None:
    """For ``motionlift export --config``: a trained DSTformer's JSON description gives ``(name,
    hyperparams, window)``; anything else (a config name, a flat hyperparameter file) gives None.

    Raises ``ValueError`` for a description of a non-DSTformer or with bad hyperparameters.
    """
    path = Path(config)
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # let the ordinary config reader report it
    if not isinstance(raw, dict) or "hyperparams" not in raw:
        return None
    spec = read_spec(path)
    if spec["arch"] != "dstformer":
        raise ValueError(f"{path}: only a DSTformer can be exported, this is {spec['arch']!r}")
    hparams = dict(spec["hyperparams"])
    with torch.device("meta"):
        build_lifter("dstformer", hparams)
    return str(spec.get("config", path.stem)), hparams, int(spec["window"])
