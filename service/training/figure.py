"""A picture for the docs: a held-out clip's 2D input beside the model's 3D output (matplotlib stick figures).

Usage: ``python -m service.training.figure --data DIR --weights W.safetensors --out PNG [--clip KEY]``. matplotlib
is a documentation-only dependency (``pip install matplotlib``); it is imported when the picture is drawn.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from service.training.evaluate import cases, lift
from service.training.mocap import load_mocap
from service.training.synth import PARENTS
from service.training.weights import load_lifter

F64 = npt.NDArray[np.float64]
_LEFT = {4, 5, 6, 11, 12, 13}


def _bones() -> list[tuple[int, int]]:
    return [(p, j) for j, p in enumerate(PARENTS) if p >= 0]


def draw(data: str, weights: str, out: Path, clip: str | None = None, frames: int = 4, seed: int = 0) -> str:
    """Draw ``frames`` evenly spaced frames of one held-out clip (``clip`` key, else the longest) with noisy
    2D input (top) and the model's root-relative 3D output in mm over the ground truth (bottom); return the
    clip's key. Raises ``ValueError`` for an unknown clip and ``ImportError`` without matplotlib."""
    mpl = importlib.import_module("matplotlib")
    mpl.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    sequences = load_mocap(data, "test")
    index = (
        max(range(len(sequences)), key=lambda i: len(sequences[i].joints))
        if clip is None
        else next((i for i, s in enumerate(sequences) if s.key == clip), -1)
    )
    if index < 0:
        raise ValueError(f"no held-out clip {clip!r}")
    case = cases(sequences, seed, "noisy")[index]
    model, spec = load_lifter(weights)
    pred = lift(model, case.view.inputs, int(spec["window"]))
    mm = case.view.mm_per_unit[:, None, None].astype(np.float64)
    pred_mm = (pred - pred[:, :1]) * mm
    gt_mm = (case.view.target - case.view.target[:, :1]) * mm
    picks = np.linspace(0, len(pred) - 1, frames).round().astype(int)
    fig = plt.figure(figsize=(3.2 * frames, 6.4))
    for col, t in enumerate(picks):
        ax = fig.add_subplot(2, frames, col + 1)
        kp = case.view.inputs[t]
        for p, j in _bones():
            if kp[p, 2] > 0 and kp[j, 2] > 0:
                ax.plot(kp[[p, j], 0], kp[[p, j], 1], color="tab:red" if j in _LEFT else "tab:blue", lw=2)
        seen = kp[:, 2] > 0  # a missing joint sits at pixel (0, 0): not drawn
        ax.scatter(kp[seen, 0], kp[seen, 1], c=kp[seen, 2], cmap="viridis", vmin=0, vmax=1, s=12, zorder=3)
        ax.set_aspect("equal")
        ax.invert_yaxis()  # image rows grow downwards
        ax.set_title(f"2D input, frame {t} (colour: score)", fontsize=9)
        ax.tick_params(labelsize=6)
        ax3: Any = fig.add_subplot(2, frames, frames + col + 1, projection="3d")
        for pose, style in ((gt_mm[t], {"color": "0.6", "lw": 3}), (pred_mm[t], {"lw": 1.8})):
            for p, j in _bones():
                colour = style.get("color") or ("tab:red" if j in _LEFT else "tab:blue")
                # camera axes (x right, y down, z forward) -> plot axes (x, depth, up)
                ax3.plot(pose[[p, j], 0], pose[[p, j], 2], -pose[[p, j], 1], color=colour, lw=style["lw"])
        ax3.set_xlim(-900, 900), ax3.set_ylim(-900, 900), ax3.set_zlim(-900, 900)
        ax3.set_box_aspect((1, 1, 1))
        ax3.view_init(elev=12, azim=-75)  # nearly the camera's view, turned a little to show depth
        ax3.set_title("3D output (grey: truth), mm", fontsize=9)
        ax3.tick_params(labelsize=5)
    name = spec.get("config", Path(weights).stem)
    fig.suptitle(f"held-out {case.seq.key} (actor {case.seq.actor}), noisy 2D, model {name}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return case.seq.key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--clip", default=None)
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()
    print(draw(args.data, args.weights, args.out, args.clip, args.frames))


if __name__ == "__main__":
    main()
