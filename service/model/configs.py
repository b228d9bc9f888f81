"""Named DSTformer hyperparameter sets and their resolution from a name or a JSON file.

"full" and "lite" are the official MotionBERT configurations (``configs/pose3d/MB_ft_h36m.yaml`` and
``MB_ft_h36m_global_lite.yaml`` of github.com/Walter0807/MotionBERT, Apache-2.0); "tiny" and "small" are the
reduced configurations of the golden reference outputs (/work/shared/reference/meta.json).
"""

import json
import math
from pathlib import Path
from typing import Any

import torch

from service.model.checkpoint import count_parameters
from service.model.dstformer import DSTformer

HParams = dict[str, int | float | bool]

_INT_KEYS = frozenset({"dim_in", "dim_out", "dim_feat", "dim_rep", "depth", "num_heads", "num_joints", "maxlen"})
_FLOAT_KEYS = frozenset({"mlp_ratio", "qk_scale", "drop_rate", "attn_drop_rate", "drop_path_rate"})
_BOOL_KEYS = frozenset({"qkv_bias", "att_fuse"})
HPARAM_KEYS = _INT_KEYS | _FLOAT_KEYS | _BOOL_KEYS
# A meta.json-style file may carry the expected parameter count; it is checked against the built model.
_PARAMS_KEY = "params"

_COMMON: HParams = {"dim_in": 3, "dim_out": 3, "maxlen": 243, "num_joints": 17, "att_fuse": True}

CONFIGS: dict[str, HParams] = {
    # MB_ft_h36m: 42,466,317 parameters.
    "full": {**_COMMON, "dim_feat": 512, "dim_rep": 512, "depth": 5, "num_heads": 8, "mlp_ratio": 2},
    # MB_ft_h36m_global_lite: 16,001,549 parameters.
    "lite": {**_COMMON, "dim_feat": 256, "dim_rep": 512, "depth": 5, "num_heads": 8, "mlp_ratio": 4},
    # Golden-reference configurations: 2,448,649 and 294,023 parameters.
    "small": {**_COMMON, "dim_feat": 128, "dim_rep": 256, "depth": 3, "num_heads": 8, "mlp_ratio": 4},
    "tiny": {**_COMMON, "dim_feat": 64, "dim_rep": 128, "depth": 2, "num_heads": 4, "mlp_ratio": 2},
}


def resolve_config(name_or_path: str) -> tuple[str, HParams]:
    """Resolve a config name (a key of ``CONFIGS``) or the path of a JSON object of DSTformer arguments.

    Returns ``(name, hyperparams)``: the config name, or the file stem for a path, and a fresh dict of the
    given hyperparameters (omitted ones take the constructor defaults; a JSON ``null`` qk_scale is dropped). A
    file may hold an extra ``"params"`` key (as in meta.json): the parameter count of the model those
    hyperparameters build.

    Raises ``ValueError`` for an unknown name, a missing or unreadable file, a non-object JSON, unknown keys
    (all named), values of the wrong type, hyperparameters the model rejects, or a ``"params"`` count that
    differs from the built model's.
    """
    if name_or_path in CONFIGS:
        return name_or_path, dict(CONFIGS[name_or_path])
    path = Path(name_or_path)
    if path.suffix.lower() != ".json" and not path.is_file():
        raise ValueError(
            f"unknown model config {name_or_path!r}: use one of {', '.join(sorted(CONFIGS))} "
            "or the path of a JSON file of DSTformer hyperparameters"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read model config {str(path)!r}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"model config {str(path)!r} must be a JSON object, got {type(raw).__name__}")
    try:
        hparams, expected_params = _validate(raw)
        if expected_params is not None:
            # Build on the meta device: no memory, no init cost, just shapes.
            with torch.device("meta"):
                got = count_parameters(DSTformer(**hparams))  # type: ignore[arg-type]
            if got != expected_params:
                raise ValueError(f'"params" is {expected_params:,} but these hyperparameters build {got:,}')
        else:
            with torch.device("meta"):
                DSTformer(**hparams)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid model config {str(path)!r}: {exc}") from exc
    return path.stem, hparams


def _validate(raw: dict[str, Any]) -> tuple[HParams, int | None]:
    unknown = sorted(set(raw) - HPARAM_KEYS - {_PARAMS_KEY})
    if unknown:
        raise ValueError(f"unknown keys {unknown}; allowed: {sorted(HPARAM_KEYS)} and {_PARAMS_KEY!r}")
    out: HParams = {}
    for key, value in raw.items():
        if key == _PARAMS_KEY:
            continue
        if key == "qk_scale" and value is None:
            continue  # null means the default scale head_dim ** -0.5
        if key in _BOOL_KEYS:
            ok = isinstance(value, bool)
        elif key in _INT_KEYS:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok:
            kind = "bool" if key in _BOOL_KEYS else "int" if key in _INT_KEYS else "number"
            raise ValueError(f"{key} must be a {kind}, got {value!r}")
        out[key] = value
    expected = raw.get(_PARAMS_KEY)
    if expected is not None and (not isinstance(expected, int) or isinstance(expected, bool)):
        raise ValueError(f'"params" must be an int, got {expected!r}')
    return out, expected
