"""The ``motionlift train`` and ``motionlift evaluate`` commands (registered by ``service.cli``).

Heavy imports (torch, numpy) happen inside the command functions, so building the CLI parser stays cheap.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
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


def add_commands(sub: Any) -> None:
    """Add ``train`` and ``evaluate`` to the ``motionlift`` subparsers ``sub``."""
    train = sub.add_parser("train", help="train a lifter on synthetic views of motion capture")
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
    train.add_argument("--threads", type=int, default=2, help="torch intra-op threads (0 = torch's default)")
    train.add_argument("--fp16", action="store_true", help="store the weights in half precision")
    train.add_argument("--weights", default="", help="where to write NAME.safetensors (+ NAME.json)")
    train.add_argument("--minutes", type=float, default=0.0,
                       help="wall-time budget: the schedule follows time spent, the run ends when spent")  # fmt: skip
    train.add_argument("--until", type=int, default=0, help="stop after this step (resume later); 0 = --steps")
    train.add_argument("--no-resume", dest="resume", action="store_false", help="start over even if last.pt exists")
    train.set_defaults(func=_train)

    ev = sub.add_parser("evaluate", help="held-out MPJPE / P-MPJPE / acceleration error of trained weights")
    ev.add_argument("--data", required=True, help="mocap directory (index.json + npz) or one .npz fixture")
    ev.add_argument("--weights", action="append", required=True, help="NAME.safetensors with NAME.json (repeatable)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the held-out cameras and noise")
    ev.add_argument("--modes", default="pixel", help="normalisations to test, comma-separated: pixel,crop")
    ev.add_argument("--no-flip", dest="flip", action="store_false", help="without flip test-time augmentation")
    ev.add_argument("--speed", action="store_true", help="also measure FLOPs and latency (DSTformer only)")
    ev.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ev.add_argument(
        "--precisions",
        default="fp32",
        help="compute precisions to compare side by side, comma-separated: fp32,bf16,fp16",
    )
    ev.add_argument("--json", type=Path, default=None, help="write the full report here")
    ev.set_defaults(func=_evaluate)


def _train(args: argparse.Namespace) -> int:
    import torch

    from service.training.train import TrainConfig, train

    cfg = TrainConfig(
        data=args.data,
        out=str(args.out),
        arch=args.arch,
        config=args.config,
        name=args.name,
        overrides=dict(args.overrides),
        window=args.window,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        warmup=args.warmup,
        seed=args.seed,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        heldout_windows=args.heldout_windows,
        crop_fraction=args.crop_fraction,
        clean_fraction=args.clean_fraction,
        threads=args.threads,
        fp16=args.fp16,
        weights=args.weights,
        resume=args.resume,
        until=args.until,
        minutes=args.minutes,
    )
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


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from service.backends.torchscript.runner import torch_dtype
    from service.model.trained import load_lifter
    from service.training.cost import profile
    from service.training.evaluate import evaluate_model, markdown

    torch.set_num_threads(args.threads) if args.threads > 0 else None
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    reports: dict[str, dict[str, Any]] = {}
    full: dict[str, Any] = {}
    try:
        precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
        dtypes = [torch_dtype(p) for p in precisions]  # ValueError names the choices
        for path in args.weights:
            model, spec = load_lifter(path)
            base = str(spec.get("config") or Path(path).stem)
            for precision, dtype in zip(precisions, dtypes, strict=True):
                if precision != "fp32" and spec["arch"] != "dstformer":
                    continue  # only the DSTformer casts its input to its weights' dtype
                label = base if precision == "fp32" else f"{base} {precision}"
                label = label if label not in reports else f"{label}#{len(reports)}"
                # The DSTformer casts its input to the weights' dtype and its output back (dstformer.py).
                reports[label] = evaluate_model(
                    copy.deepcopy(model).to(dtype),
                    int(spec["window"]),
                    args.data,
                    seed=args.seed,
                    flip=args.flip,
                    modes=modes,
                )
                full[label] = {"spec": spec, "precision": precision, "report": reports[label]}
            if args.speed and spec["arch"] == "dstformer":
                full[label]["speed"] = profile(dict(spec["hyperparams"]), [int(spec["window"])], threads=args.threads)
    except (FileNotFoundError, ValueError) as exc:
        print(f"motionlift evaluate: {exc}", file=sys.stderr)
        return 2
    for key in reports[next(iter(reports))]:
        print(f"\n### {key} 2D (MPJPE / P-MPJPE mm, accel mm/frame^2)\n")
        print(markdown(reports, key, per_action=key.startswith("pixel")))
    for label, entry in full.items():
        for row in entry.get("speed", []):
            print(f"\n{label}: {json.dumps(row)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(full, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return 0
