"""The model card's learning curve: held-out MPJPE (clean and noisy 2D) against training minutes, one line per
condition, a dashed line where a stage began (the learning rate jumped back up: training went on from saved
weights) and the issue's goals as dotted lines.

Usage: ``python -m service.training.curve --csv runs/default/curve.csv --out curve.png`` (a curve.csv as
``motionlift train`` writes it: step, seconds, lr, train_loss, train_mpjpe_mm, heldout_clean_mm, heldout_noisy_mm).
matplotlib is imported when the picture is drawn (the ``train`` extra).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import itertools
from pathlib import Path

GOALS_MM = {"clean": 60.0, "noisy": 75.0}  # issue 18's goal for the default model


def read(path: Path) -> list[dict[str, float]]:
    """The rows of a curve.csv as numbers. Raises ``ValueError`` naming a missing column."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    for column in ("seconds", "lr", "heldout_clean_mm", "heldout_noisy_mm"):
        if rows and column not in rows[0]:
            raise ValueError(f"{path}: no {column!r} column")
    return rows


def stage_starts(rows: list[dict[str, float]]) -> list[float]:
    """Minutes at which a stage ended and the next began: the learning rate more than doubled from one row to
    the next (the boundary is drawn at the earlier row, the last of the ending stage)."""
    return [a["seconds"] / 60.0 for a, b in itertools.pairwise(rows) if b["lr"] > 2.0 * a["lr"]]


def draw(path: Path, out: Path) -> None:
    """Write the curve of ``path`` to ``out`` (PNG)."""
    rows = read(path)
    plt = importlib.import_module("matplotlib.pyplot")
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    minutes = [r["seconds"] / 60.0 for r in rows]
    for condition, colour in (("clean", "tab:blue"), ("noisy", "tab:orange")):
        ax.plot(minutes, [r[f"heldout_{condition}_mm"] for r in rows], color=colour, lw=1.2, label=f"{condition} 2D")
        goal = GOALS_MM[condition]
        ax.axhline(goal, color=colour, ls=":", lw=1.0, label=f"goal, {condition} ({goal:.0f} mm)")
    for start in stage_starts(rows):
        ax.axvline(start, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("training minutes (2-core CPU)")
    ax.set_ylabel("held-out MPJPE (mm)")
    ax.set_ylim(40, min(250.0, max(r["heldout_noisy_mm"] for r in rows) + 10))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    draw(args.csv, args.out)


if __name__ == "__main__":
    main()
