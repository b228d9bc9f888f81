"""``motionlift export``: build a DSTformer (a named config or a JSON file; official, MMPose or trained weights,
or seeded random ones) and write it as TorchScript (scripted) or ONNX (``--format onnx``) with its metadata, and
``config.pbtxt`` beside it when the output is in a Triton repository layout (``pytorch_libtorch`` for TorchScript,
``onnxruntime_onnx`` with TensorRT fp16 for ONNX)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from service.config import DEFAULT_MODEL
from service.model.precision import PRECISIONS

log = logging.getLogger("service")

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".pt", "onnx": ".onnx"}
# A model of its own on Triton beside the TorchScript one: the gateway picks it with --triton-model dstformer_onnx.
DEFAULT_ONNX_MODEL = Path("model_repository/dstformer_onnx/1/model.onnx")


def add_arguments(export: argparse.ArgumentParser) -> None:
    export.add_argument(
        "--config", default="small", help="full, lite, small, tiny, or a JSON file of DSTformer hyperparameters"
    )
    export.add_argument(
        "--checkpoint",
        default=None,
        help="official (model_pos) or MMPose (state_dict) checkpoint; none = seeded random weights",
    )
    export.add_argument("--seed", type=int, default=0, help="seed of the random weights (without --checkpoint)")
    export.add_argument("--window", type=int, default=None, help="frames per model window (default: maxlen)")
    export.add_argument("--card", default=None, help="model card of the weights, recorded in the metadata")
    export.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="dtype of the stored weights and of the computation (input and output stay float32); "
        "ONNX is fp32 only (its Triton config runs it with TensorRT in fp16)",
    )
    export.add_argument(
        "--format",
        choices=FORMATS,
        default="torchscript",
        help="torchscript (Triton's pytorch_libtorch, or serve in-process) or onnx (Triton's onnxruntime backend "
        "with TensorRT fp16; needs the `onnx` extra)",
    )
    export.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"model file to write (default: {DEFAULT_MODEL}, or {DEFAULT_ONNX_MODEL} with --format onnx)",
    )


def _check_format(args: argparse.Namespace, out: Path) -> str | None:
    """The reason ``--format`` does not go with the other options or the installed packages, if it does not."""
    if args.format == "onnx" and args.precision != "fp32":
        return (
            f"--precision {args.precision} needs --format torchscript: an ONNX model is stored in fp32 (TensorRT "
            "runs it in fp16 by its Triton config)"
        )
    wrong = next((f for f, s in SUFFIXES.items() if f != args.format and out.suffix == s), None)
    if wrong is not None:
        return f"--out {out}: {out.suffix} is the {wrong} suffix, but --format is {args.format}"
    if args.format == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            return "--format onnx needs the onnx package: pip install 'motionlift[onnx]'"
    return None


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    out: Path = args.out or (DEFAULT_ONNX_MODEL if args.format == "onnx" else DEFAULT_MODEL)
    problem = _check_format(args, out)
    if problem is not None:
        print(f"motionlift export: {problem}", file=sys.stderr)
        return 2
    try:
        meta = export_model(
            args.config,
            args.checkpoint,
            out,
            seed=args.seed,
            window=args.window,
            card=args.card,
            precision=args.precision,
            model_format=args.format,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"motionlift export: {exc}", file=sys.stderr)
        return 2
    log.info("wrote %s (%s): %s, %d parameters, window %d, %s, weights: %s", out, args.format,
             meta["config"], meta["params"], meta["window"], args.precision, meta["weights"])  # fmt: skip
    if not meta["trained"]:
        log.warning("these are RANDOM weights: the model runs, but its 3D output is not a real pose")
    return 0


def export_model(
    config: str,
    checkpoint: str | Path | None,
    out: Path,
    *,
    seed: int = 0,
    window: int | None = None,
    card: str | None = None,
    weights: str | None = None,
    precision: str = "fp32",
    model_format: str = "torchscript",
) -> dict[str, Any]:
    """Build the DSTformer of ``config`` (a name, a hyperparameter file or a trained model's description) with the
    weights of ``checkpoint`` (official, MMPose, bare or safetensors; None = seeded random weights) and write it to
    ``out`` in ``model_format``; return its metadata. ``weights`` describes the weights in the metadata (default:
    the checkpoint's file name). Raises ``FileNotFoundError`` for a missing checkpoint and ``ValueError`` for an
    unknown config, an unreadable checkpoint, weights that do not fit the config, or a window outside
    ``[1, maxlen]``; nothing is written then."""
    from service.model.checkpoint import build_model
    from service.model.configs import resolve_config
    from service.model.export import model_meta
    from service.model.trained import resolve_export_config

    # A trained model's description (e.g. service/model/weights/default.json) also gives its window.
    trained_spec = resolve_export_config(config)
    name, hparams, spec_window = trained_spec or (*resolve_config(config), None)
    model = build_model(hparams, checkpoint=checkpoint, seed=seed)
    maxlen = int(hparams.get("maxlen", 243))
    window = window or spec_window or maxlen
    if not 1 <= window <= maxlen:
        raise ValueError(f"--window must be in [1, {maxlen}], got {window}")
    trained = checkpoint is not None
    if weights is None:
        weights = Path(checkpoint).name if checkpoint is not None else f"random initialisation, seed {seed}"
    meta: dict[str, Any] = model_meta(name, hparams, model, window=window, trained=trained, weights=weights, card=card)
    meta["precision"] = precision
    _write(model, meta, model_format, out)
    return meta


def _write(model: Any, meta: dict[str, Any], model_format: str, out: Path) -> None:
    from service.model.export import export_torchscript
    from service.model.precision import torch_dtype

    if model_format == "onnx":
        from service.model.onnx import export_onnx

        meta["format"] = "onnx"
        export_onnx(model, out, meta, frames=meta["window"])
        return
    model.to(torch_dtype(meta["precision"]))  # the forward still takes and returns float32
    export_torchscript(model, out, meta)
