"""``motionlift train``: train a lifter (the DSTformer or the MLP baseline) on synthetic views of motion capture.

Heavy imports (torch, numpy) happen inside ``run``, so building the CLI parser stays cheap.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_arguments(train: argparse.ArgumentParser) -> None:
    """Flags for ``TrainConfig``'s fields (each flag's dest is the field's name)."""
    train.add_argument("--data", required=True, help="mocap directory (index.json + npz) or one .npz fixture")
    train.add_argument("--out", required=True, type=Path, help="run directory: last.pt, curve.csv, weights")
    train.add_argument("--arch", choices=("dstformer", "mlp"), default="dstformer", help="mlp = the baseline")
    train.add_argument("--config", default="tiny", help="DSTformer config name or JSON file (see export)")
    train.add_argument("--set", dest="overrides", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                       help="override one hyperparameter, e.g. --set dim_feat=96 (repeatable)")  # fmt: skip
    train.add_argument("--name", default="", help="config name recorded with the weights")
    train.add_argument("--window", type=int, default=81, help="frames per training window (<= maxlen)")
    train.add_argument("--steps", type=int, default=2000)
    train.add_argument("--batch", type=int, default=32, help="windows per step (more for shorter windows)")
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--warmup", type=int, default=100, help="steps of linear learning-rate warm-up")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--eval-every", type=int, default=100, help="steps between held-out measurements")
    train.add_argument("--checkpoint-every", type=int, default=100, help="steps between resumable checkpoints")
    train.add_argument("--heldout-windows", type=int, default=32, help="held-out windows per 2D condition")
    train.add_argument("--crop-fraction", type=float, default=0.3, help="share of crop-normalised windows")
    train.add_argument("--clean-fraction", type=float, default=0.2, help="share of windows with exact 2D")
    train.add_argument("--cameras", choices=("standard", "varied"), default="standard",
                       help="camera ranges (synth.CAMERAS): varied adds roll and wider lenses")  # fmt: skip
    train.add_argument("--threads", type=int, default=2, help="torch intra-op threads (0 = torch's default)")
    train.add_argument("--fp16", action="store_true", help="store the weights in half precision")
    train.add_argument("--weights", default="", help="where to write NAME.safetensors (+ NAME.json)")
    train.add_argument("--minutes", type=float, default=0.0,
                       help="wall-time budget: the schedule follows time spent, the run ends when spent")  # fmt: skip
    train.add_argument("--until", type=int, default=0, help="stop after this step (resume later); 0 = --steps")
    train.add_argument(
        "--init",
        default="",
        help="weights (.safetensors with its .json) to train on from, e.g. service/model/weights/default.safetensors",
    )
    train.add_argument("--no-resume", dest="resume", action="store_false", help="start over even if last.pt exists")


def run(args: argparse.Namespace) -> int:
    import torch

    from service.training.config import TrainConfig
    from service.training.train import train

    # The flags' dests are TrainConfig's field names; fields without a flag keep their defaults.
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    cfg = TrainConfig(**{**values, "out": str(args.out), "overrides": dict(args.overrides)})
    try:
        result = train(cfg)
    except (FileNotFoundError, ValueError) as exc:
        print(f"motionlift train: {exc}", file=sys.stderr)
        return 2
    held = ", ".join(f"{k} {v:.1f} mm" for k, v in result["heldout_mpjpe_mm"].items())
    if result["weights"] is None:
        print(f"stopped at step {result['steps']} (resume with the same command and a later --until)")
        return 0
    print(f"wrote {result['weights']} after {result['steps']} steps, {result['seconds']:.0f} s "
          f"({torch.get_num_threads()} threads); held-out MPJPE: {held}")  # fmt: skip
    return 0
