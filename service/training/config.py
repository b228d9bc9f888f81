"""What a training run depends on (``TrainConfig``, saved with its checkpoints and weights) and its schedules:
the learning rate (linear warm-up, cosine decay, by steps or by a wall-time budget) and the window lengths."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.model.configs import resolve_config
from service.training.baseline import MLP_DEFAULTS


@dataclass
class TrainConfig:
    """Everything a run depends on (saved in the checkpoint and the weights description)."""

    data: str
    out: str
    arch: str = "dstformer"
    config: str = "tiny"
    name: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    window: int = 81
    steps: int = 2000
    batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    seed: int = 0
    eval_every: int = 100
    checkpoint_every: int = 100
    heldout_windows: int = 32
    crop_fraction: float = 0.3
    clean_fraction: float = 0.2
    cameras: str = "standard"  # a name of synth.CAMERAS: the ranges training cameras are drawn from
    hdm05_share: float = 0.5
    threads: int = 0
    fp16: bool = False
    weights: str = ""
    resume: bool = True
    until: int = 0  # stop (checkpointed, no weights written) after this step; 0 = run to ``steps``
    minutes: float = 0.0  # wall-time budget: the schedule follows the time spent, the run ends when it is used
    init: str = ""  # weights (.safetensors + .json) to start from instead of random ones: training on from them


def hyperparams(cfg: TrainConfig) -> tuple[str, dict[str, Any]]:
    """``(config name, hyperparameters)`` of the model ``cfg`` trains (``maxlen`` at least the window)."""
    if cfg.arch == "mlp":
        return "mlp", {**MLP_DEFAULTS, **cfg.overrides}
    name, base = resolve_config(cfg.config)
    hp: dict[str, Any] = {**base, **cfg.overrides}
    if int(hp.get("maxlen", 243)) < cfg.window:
        raise ValueError(f"window {cfg.window} is longer than maxlen {hp.get('maxlen')}")
    return name, hp


def fraction_done(cfg: TrainConfig, step: int, seconds: float) -> float:
    """How much of the run is done: by steps, or by wall time when ``minutes`` is set (whichever is ahead)."""
    frac = step / max(1, cfg.steps)
    if cfg.minutes > 0:
        frac = max(frac, seconds / (60.0 * cfg.minutes))
    return min(1.0, frac)


def learning_rate(cfg: TrainConfig, step: int, seconds: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 5% of ``lr`` at the end of the run (at
    ``steps``, or when the ``minutes`` budget is spent)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = max(0.0, fraction_done(cfg, step, seconds) - cfg.warmup / max(1, cfg.steps)) / (
        1.0 - cfg.warmup / max(1, cfg.steps)
    )
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac))))


def window_length(rng: np.random.Generator, window: int) -> int:
    """Frames of this step's windows: the full window half of the time, else shorter (short clips, the start
    of a stream), so the model serves any length up to ``window``."""
    r = rng.random()
    if r < 0.5 or window < 4:
        return window
    if r < 0.95:
        return int(rng.integers(window // 4, window + 1))
    return int(rng.integers(1, window // 4 + 1))
