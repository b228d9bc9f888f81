"""Training a lifter (DSTformer or the single-frame MLP baseline) on synthetic views of motion capture.

Each step draws world windows (``mocap.WindowSampler``), turns them into what the service would receive
(``synth.training_views``) and minimises MotionBERT's 3D loss (``metrics.lifting_loss``) with AdamW, a linear
warm-up and a cosine decay. Every ``eval_every`` steps the loss is measured on fixed held-out windows (HDM05
actors mm and tr) and appended to ``curve.csv``. ``last.pt`` in the run directory is a resumable checkpoint
(model, optimiser, step, both random generators); running again with ``resume`` continues where it stopped
and gives the same weights as an uninterrupted run. The result is written with ``weights.save_weights``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.model.configs import resolve_config
from service.training import synth
from service.training.baseline import MLP_DEFAULTS
from service.training.metrics import lifting_loss, mpjpe_loss
from service.training.mocap import WindowSampler, load_mocap
from service.training.progress import Progress
from service.training.weights import build_lifter, save_weights

CURVE_FIELDS = ("step", "seconds", "lr", "train_loss", "train_mpjpe_mm", "heldout_clean_mm", "heldout_noisy_mm")


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
    hdm05_share: float = 0.5
    threads: int = 0
    fp16: bool = False
    weights: str = ""
    resume: bool = True
    until: int = 0  # stop (checkpointed, no weights written) after this step; 0 = run to ``steps``
    minutes: float = 0.0  # wall-time budget: the schedule follows the time spent, the run ends when it is used


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


HeldOut = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs, target, mm_per_unit


def heldout_views(cfg: TrainConfig) -> dict[str, HeldOut]:
    """Fixed held-out windows (seeded): clean and noisy 2D, pixel normalisation, the full window when the
    held-out clips allow it (halved until they do)."""
    sampler = WindowSampler(load_mocap(cfg.data, "test"), speed=(1.0, 1.0))
    rng = np.random.default_rng(cfg.seed + 10_000)
    frames = cfg.window
    while True:
        try:
            world = sampler.sample(rng, cfg.heldout_windows, frames)
            break
        except ValueError:
            if frames == 1:
                raise
            frames = max(1, frames // 2)
    cameras = [synth.random_camera(rng, w) for w in world]
    out = {}
    for name, noise in (("clean", synth.CLEAN), ("noisy", synth.EVAL_NOISE)):
        views = [synth.view(rng, w, cam, noise, "pixel") for w, cam in zip(world, cameras, strict=True)]
        out[name] = (
            torch.from_numpy(np.stack([v.inputs for v in views])),
            torch.from_numpy(np.stack([v.target for v in views])),
            torch.from_numpy(np.stack([v.mm_per_unit for v in views])),
        )
    return out


def heldout_mpjpe(model: torch.nn.Module, views: HeldOut) -> float:
    """Root-relative MPJPE (mm, 2.5D as MotionBERT) of ``model`` on held-out ``(inputs, target, mm)``."""
    inputs, target, mm = views
    with torch.no_grad():
        pred = model(inputs)
    scale = mm[..., None, None]
    p, t = pred * scale, target * scale
    return float(mpjpe_loss(p - p[..., :1, :], t - t[..., :1, :]))


class _RunClock:
    """Seconds of training so far, not counting pauses: the budget of ``minutes`` is the time spent training.

    A step that took more than 5x the median of the last 20 steps (the process was stopped with SIGSTOP, the
    machine slept) counts as that median. Held-out measurements and checkpoints count as they are.
    """

    def __init__(self, already: float) -> None:
        self.total = already
        self.last = time.perf_counter()
        self.recent: list[float] = []

    def tick(self) -> None:
        now = time.perf_counter()
        dt, self.last = now - self.last, now
        if len(self.recent) >= 5:
            dt = min(dt, 5.0 * float(np.median(self.recent)))
        self.recent = [*self.recent[-19:], dt]
        self.total += dt

    def seconds(self) -> float:
        return self.total + (time.perf_counter() - self.last)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Run (or resume) training; return the final held-out metrics and where the weights went.

    Raises ``FileNotFoundError`` / ``ValueError`` for missing data or bad settings, and ``ValueError`` when
    resuming a run directory whose checkpoint was made with other settings.
    """
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    name, hp = hyperparams(cfg)
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    train_seqs = load_mocap(cfg.data, "train")
    sampler = WindowSampler(train_seqs, source_weights={"hdm05": cfg.hdm05_share, "cmu": 1.0 - cfg.hdm05_share})
    held_views = heldout_views(cfg)
    torch.manual_seed(cfg.seed)
    model = build_lifter(cfg.arch, hp)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    step, elapsed = 0, 0.0
    ckpt_path = run / "last.pt"
    if cfg.resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        saved = json.loads(ckpt["config"])
        keys = ("arch", "config", "overrides", "window", "steps", "batch", "lr", "warmup", "seed", "data")
        if any(saved.get(k) != asdict(cfg).get(k) for k in keys):
            raise ValueError(f"{ckpt_path} was made with other settings ({ {k: saved.get(k) for k in keys} })")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        rng.bit_generator.state = json.loads(ckpt["numpy_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        step, elapsed = int(ckpt["step"]), float(ckpt["seconds"])
    curve_path = run / "curve.csv"
    if step == 0:
        curve_path.write_text(",".join(CURVE_FIELDS) + "\n", encoding="utf-8")
    progress = progress or Progress(cfg.steps)
    progress.start(step)
    clock = _RunClock(elapsed)
    losses: list[float] = []
    mpjpes: list[float] = []
    last_eval: dict[str, float] = {}
    done = fraction_done(cfg, step, elapsed) >= 1.0
    while not done and not (0 < cfg.until <= step):
        model.train()
        frames = window_length(rng, cfg.window)
        batch = max(cfg.batch, min(4 * cfg.batch, cfg.batch * cfg.window // frames))
        inputs, target, mm = synth.training_views(
            rng, sampler.sample(rng, batch, frames), cfg.crop_fraction, cfg.clean_fraction
        )
        lr = learning_rate(cfg, step, clock.seconds())
        for group in opt.param_groups:
            group["lr"] = lr
        terms = lifting_loss(model(torch.from_numpy(inputs)), torch.from_numpy(target), torch.from_numpy(mm))
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        clock.tick()
        losses.append(terms["loss"].item())
        mpjpes.append(terms["mpjpe"].item())
        done = fraction_done(cfg, step, clock.seconds()) >= 1.0
        pause = 0 < cfg.until <= step
        if step % cfg.eval_every == 0 or done:
            model.eval()
            last_eval = {k: heldout_mpjpe(model, v) for k, v in held_views.items()}
            row = [step, clock.seconds(), lr, np.mean(losses), np.mean(mpjpes)]
            row += [last_eval["clean"], last_eval["noisy"]]
            with curve_path.open("a", encoding="utf-8") as f:
                f.write(",".join(f"{v:.6g}" for v in row) + "\n")
            losses, mpjpes = [], []
        if step % cfg.checkpoint_every == 0 or done or pause:
            state = {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "seconds": clock.seconds(),
                "numpy_rng": json.dumps(rng.bit_generator.state),
                "torch_rng": torch.get_rng_state(),
                "config": json.dumps(asdict(cfg)),
            }
            _save_checkpoint(ckpt_path, state)
        frac = fraction_done(cfg, step, clock.seconds())
        held = {f"held_{k}": v for k, v in last_eval.items()}
        progress.update(step, fraction=frac, loss=terms["mpjpe"].item(), **held)
    progress.finish()
    model.eval()
    seconds = clock.seconds()
    if not done:
        return {"weights": None, "seconds": seconds, "heldout_mpjpe_mm": last_eval, "steps": step}
    if not last_eval:  # resumed a finished run
        last_eval = {k: heldout_mpjpe(model, v) for k, v in held_views.items()}
    weights = Path(cfg.weights) if cfg.weights else run / "model.safetensors"
    spec = {
        "arch": cfg.arch,
        "config": cfg.name or name,
        "hyperparams": hp,
        "window": cfg.window,
        "training": {**asdict(cfg), "seconds": round(seconds, 1), "torch_threads": torch.get_num_threads()},
        "heldout_mpjpe_mm": {k: round(v, 2) for k, v in last_eval.items()},
    }
    save_weights(model, weights, spec, fp16=cfg.fp16)
    if cfg.fp16:  # keep full precision too, to check that half precision costs no accuracy
        save_weights(model, run / "fp32.safetensors", spec, fp16=False)
    return {"weights": str(weights), "seconds": seconds, "heldout_mpjpe_mm": last_eval, "steps": step}
