"""Checkpoint loading (official MotionBERT, MMPose, bare state dicts) and model construction.

Layouts (see /work/shared/design/MOTIONBERT.md):
- official (github.com/Walter0807/MotionBERT, Apache-2.0): ``{"model_pos": {...}, "epoch", "lr", "optimizer",
  "min_loss"}``; keys carry the DataParallel prefix ``module.``;
- MMPose 1.x (``configs/body_3d_keypoint/motionbert``): ``{"state_dict": {...}, ...}`` with ``backbone.`` /
  ``head.`` keys, renamed one-to-one to the official names by ``_from_mmpose``;
- a bare state dict of tensors, official names with or without ``module.``.

Files are read with ``torch.load(weights_only=True)``: the official layout holds only containers, tensors and
numbers (the optimizer state is a plain dict of those), so no pickled code is ever executed. Verified on the
reference files.
"""

import os
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from service.model.dstformer import DSTformer

_OFFICIAL_PREFIX = "module."
# MMPose -> official renames inside the backbone (applied after stripping "backbone.").
_MMPOSE_BACKBONE = [
    (re.compile(r"^spat_embed$"), "pos_embed"),
    (re.compile(r"^attn_regress\.(\d+)\.(weight|bias)$"), r"ts_attn.\1.\2"),
    (re.compile(r"^(blocks_(?:st|ts)\.\d+\.mlp_[st])\.0\.(weight|bias)$"), r"\1.fc1.\2"),
    (re.compile(r"^(blocks_(?:st|ts)\.\d+\.mlp_[st])\.2\.(weight|bias)$"), r"\1.fc2.\2"),
]
_MMPOSE_HEAD = {
    "head.pre_logits.fc.weight": "pre_logits.fc.weight",
    "head.pre_logits.fc.bias": "pre_logits.fc.bias",
    "head.fc.weight": "head.weight",
    "head.fc.bias": "head.bias",
}


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of ``model`` (works on the meta device)."""
    return sum(p.numel() for p in model.parameters())


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a DSTformer checkpoint file; return its CPU weights under the official names (no ``module.``).

    Accepts the official, MMPose and bare layouts described in the module docstring, and a ``.safetensors``
    file of official names (MotionLift's trained weights; fp16 is widened to fp32). Raises
    ``FileNotFoundError`` if the file is missing and ``ValueError`` if it cannot be unpickled safely or its
    layout is not recognised (the message names the top-level keys found).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {os.fspath(path)}")
    if os.fspath(path).endswith(".safetensors"):
        return _load_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise ValueError(f"cannot read checkpoint {os.fspath(path)!r} safely (weights_only=True): {exc}") from exc
    return state_dict_from_object(obj, source=os.fspath(path))


def _load_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A safetensors file (MotionLift's trained weights, possibly fp16) as fp32 tensors under official names."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(os.fspath(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"cannot read safetensors file {os.fspath(path)!r}: {exc}") from exc
    return state_dict_from_object({k: v.float() for k, v in tensors.items()}, source=os.fspath(path))


def state_dict_from_object(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Normalise an already-loaded checkpoint object to official names, as ``load_state_dict`` does."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{source}: expected a dict, got {type(obj).__name__}")
    if "model_pos" in obj:
        raw, layout = obj["model_pos"], "official"
    elif "state_dict" in obj:
        raw, layout = obj["state_dict"], "MMPose"
    else:
        raw, layout = obj, "bare"
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f"{source}: {layout} layout without weights (an empty or non-dict state dict)")
    bad = [str(k) for k, v in raw.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        keys = sorted(str(k) for k in obj)[:10]
        raise ValueError(
            f"{source}: unrecognised checkpoint layout (top-level keys {keys}); expected an official "
            "MotionBERT checkpoint ('model_pos'), an MMPose one ('state_dict') or a dict of tensors; "
            f"non-tensor entries: {bad[:5]}"
        )
    sd: dict[str, torch.Tensor] = dict(raw)
    if any(k.startswith(("backbone.", "head.fc.", "head.pre_logits.")) for k in sd):
        return _from_mmpose(sd, source)
    return {k.removeprefix(_OFFICIAL_PREFIX): v for k, v in sd.items()}


def _from_mmpose(sd: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in sd.items():
        if key in _MMPOSE_HEAD:
            name = _MMPOSE_HEAD[key]
        elif key.startswith("backbone."):
            name = key.removeprefix("backbone.")
            for pattern, repl in _MMPOSE_BACKBONE:
                name = pattern.sub(repl, name)
        else:
            unknown.append(key)
            continue
        out[name] = value
    if unknown:
        raise ValueError(f"{source}: MMPose checkpoint with keys outside backbone./head.: {unknown[:10]}")
    return out


def build_model(
    hparams: Mapping[str, Any], checkpoint: str | os.PathLike[str] | None = None, seed: int | None = None
) -> DSTformer:
    """Build a ``DSTformer(**hparams)`` in eval mode on CPU, with gradients disabled.

    With ``checkpoint`` the weights are loaded strictly (``load_state_dict``); ``seed`` is then ignored.
    Without it, the weights are the official random initialisation, reproducible when ``seed`` is given (the
    global RNG state is left untouched). Raises ``FileNotFoundError`` for a missing checkpoint and
    ``ValueError`` for bad hyperparameters, an unreadable checkpoint, or a checkpoint that does not fit them
    (the message lists missing keys, unexpected keys and shape mismatches).
    """
    try:
        if checkpoint is None:
            with torch.random.fork_rng(devices=[]):
                if seed is not None:
                    torch.manual_seed(seed)
                model = DSTformer(**hparams)
        else:
            sd = load_state_dict(checkpoint)
            # No random init for weights that are overwritten anyway: shapes on meta, then allocate and copy.
            with torch.device("meta"):
                model = DSTformer(**hparams)
            model.to_empty(device="cpu")
    except TypeError as exc:  # unexpected keyword argument
        raise ValueError(f"invalid DSTformer hyperparameters: {exc}") from exc
    if checkpoint is not None:
        _check_fits(model, sd, os.fspath(checkpoint))
        model.load_state_dict(sd, strict=True)
    model.requires_grad_(False)
    return model.eval()


def _check_fits(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k}: checkpoint {list(sd[k].shape)} vs model {list(v.shape)}"
        for k, v in own.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if not (missing or unexpected or shapes):
        return
    parts = [f"checkpoint {source!r} does not fit the model hyperparameters{_describe(sd)}"]
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", shapes),
    ):
        if items:
            more = f" (+{len(items) - 10} more)" if len(items) > 10 else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:10])}{more}")
    raise ValueError("; ".join(parts))


def _describe(sd: Mapping[str, torch.Tensor]) -> str:
    """A hint like ' (the checkpoint looks like dim_feat=64, depth=2)' read from known tensor shapes."""
    hints = []
    emb = sd.get("joints_embed.weight")
    if emb is not None and emb.dim() == 2:
        hints.append(f"dim_in={emb.shape[1]}, dim_feat={emb.shape[0]}")
    blocks = {m.group(1) for k in sd if (m := re.match(r"blocks_st\.(\d+)\.", k))}
    if blocks:
        hints.append(f"depth={len(blocks)}")
    fc = sd.get("pre_logits.fc.weight")
    if fc is not None and fc.dim() == 2:
        hints.append(f"dim_rep={fc.shape[0]}")
    return f" (the checkpoint looks like {', '.join(hints)})" if hints else ""
