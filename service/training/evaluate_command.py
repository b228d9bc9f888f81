"""``motionlift evaluate``: held-out MPJPE / P-MPJPE / acceleration error of trained weights, per precision.

Heavy imports (torch, numpy) happen inside ``run``, so building the CLI parser stays cheap.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any


def add_arguments(ev: argparse.ArgumentParser) -> None:
    ev.add_argument("--data", required=True, help="mocap directory (index.json + npz) or one .npz fixture")
    ev.add_argument("--weights", action="append", required=True, help="NAME.safetensors with NAME.json (repeatable)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the held-out cameras and noise")
    ev.add_argument("--modes", default="pixel", help="normalisations to test, comma-separated: pixel,crop")
    ev.add_argument("--cameras", default="standard",
                    help="held-out camera sets, comma-separated: standard,varied,unseen")  # fmt: skip
    ev.add_argument("--no-flip", dest="flip", action="store_false", help="without flip test-time augmentation")
    ev.add_argument("--speed", action="store_true", help="also measure FLOPs and latency (DSTformer only)")
    ev.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ev.add_argument(
        "--precisions",
        default="fp32",
        help="compute precisions to compare side by side, comma-separated: fp32,bf16,fp16",
    )
    ev.add_argument("--json", type=Path, default=None, help="write the full report here")


def run(args: argparse.Namespace) -> int:
    import torch

    from service.model.precision import torch_dtype
    from service.training.cost import profile
    from service.training.evaluate import evaluate_model, markdown
    from service.training.weights import load_lifter

    torch.set_num_threads(args.threads) if args.threads > 0 else None
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    cameras = tuple(c.strip() for c in args.cameras.split(",") if c.strip())
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
                    cameras=cameras,
                )
                full[label] = {"spec": spec, "precision": precision, "report": reports[label]}
            if args.speed and spec["arch"] == "dstformer":
                full[label]["speed"] = profile(dict(spec["hyperparams"]), [int(spec["window"])], threads=args.threads)
    except (FileNotFoundError, ValueError) as exc:
        print(f"motionlift evaluate: {exc}", file=sys.stderr)
        return 2
    for key in reports[next(iter(reports))]:
        print(f"\n### {key} 2D (MPJPE / P-MPJPE mm, accel mm/frame^2)\n")
        print(markdown(reports, key, per_action=key.startswith("pixel") and key.count("/") == 1))
    for label, entry in full.items():
        for row in entry.get("speed", []):
            print(f"\n{label}: {json.dumps(row)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(full, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return 0
