"""Trained DSTformer weights on disk, as serving reads them: a safetensors file and a JSON description beside it.

``NAME.safetensors`` holds the state dict (official DSTformer parameter names, fp32 or fp16);
``NAME.json`` says how to rebuild the module and how it was made::

    {"arch": "dstformer" | "mlp", "config": "default", "hyperparams": {...}, "window": 81,
     "params": 294023, "precision": "fp16", "training": {...}, "heldout": {...}}

safetensors (not pickle) because it cannot carry code and loads without trusting the file. ``motionlift export``
reads a description here (``resolve_export_config``) and the weights through ``checkpoint.build_model``; writing
them, and the ``mlp`` baseline, are training's (``service.training.weights``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from service.model.dstformer import DSTformer


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
        try:
            DSTformer(**hparams)
        except TypeError as exc:
            raise ValueError(f"invalid dstformer hyperparameters: {exc}") from exc
    return str(spec.get("config", path.stem)), hparams, int(spec["window"])
