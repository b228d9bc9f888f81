"""``motionlift export``: build a DSTformer (a named config or a JSON file; official, MMPose or trained weights,
or seeded random ones), script it and write it as TorchScript with its metadata, and ``config.pbtxt`` beside it
when the output is in a Triton repository layout."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from service.config import DEFAULT_MODEL
from service.model.precision import PRECISIONS

log = logging.getLogger("service")


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
        help="dtype of the stored weights and of the computation (input and output stay float32)",
    )
    export.add_argument("--out", type=Path, default=DEFAULT_MODEL, help="where to write model.pt")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    from service.model.checkpoint import build_model
    from service.model.configs import resolve_config
    from service.model.export import export_torchscript, model_meta
    from service.model.precision import torch_dtype
    from service.model.trained import resolve_export_config

    try:
        # A trained model's description (e.g. service/model/weights/default.json) also gives its window.
        trained_spec = resolve_export_config(args.config)
        name, hparams, spec_window = trained_spec or (*resolve_config(args.config), None)
        model = build_model(hparams, checkpoint=args.checkpoint, seed=args.seed)
    except (FileNotFoundError, ValueError) as exc:
        print(f"motionlift export: {exc}", file=sys.stderr)
        return 2
    maxlen = int(hparams.get("maxlen", 243))
    window = args.window or spec_window or maxlen
    if not 1 <= window <= maxlen:
        print(f"motionlift export: --window must be in [1, {maxlen}], got {window}", file=sys.stderr)
        return 2
    trained = args.checkpoint is not None
    weights = Path(args.checkpoint).name if trained else f"random initialisation, seed {args.seed}"
    meta: dict[str, Any] = model_meta(
        name, hparams, model, window=window, trained=trained, weights=weights, card=args.card
    )
    meta["precision"] = args.precision
    model.to(torch_dtype(args.precision))  # the forward still takes and returns float32
    export_torchscript(model, args.out, meta)
    log.info("wrote %s: %s, %d parameters, window %d, %s, weights: %s",
             args.out, name, meta["params"], window, args.precision, weights)  # fmt: skip
    if not trained:
        log.warning("these are RANDOM weights: the model runs, but its 3D output is not a real pose")
    return 0
