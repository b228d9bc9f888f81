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
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.training import synth
from service.training.config import TrainConfig, fraction_done, hyperparams, learning_rate, window_length
from service.training.metrics import lifting_loss, mpjpe_loss
from service.training.mocap import WindowSampler, load_mocap
from service.training.progress import Progress
from service.training.weights import build_lifter, load_lifter, save_weights

CURVE_FIELDS = ("step", "seconds", "lr", "train_loss", "train_mpjpe_mm", "heldout_clean_mm", "heldout_noisy_mm")


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


class _Run:
    """One run's moving parts: the data, the seeded model, optimiser and generator, and the run directory
    (``last.pt``, ``curve.csv``, and the weights unless ``cfg.weights`` names another file)."""

    def __init__(self, cfg: TrainConfig, hp: dict[str, Any]) -> None:
        self.cfg = cfg
        if cfg.cameras not in synth.CAMERAS:
            raise ValueError(f"unknown cameras {cfg.cameras!r}: use one of {', '.join(synth.CAMERAS)}")
        self.cameras = synth.CAMERAS[cfg.cameras]
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        train_seqs = load_mocap(cfg.data, "train")
        self.sampler = WindowSampler(
            train_seqs, source_weights={"hdm05": cfg.hdm05_share, "cmu": 1.0 - cfg.hdm05_share}
        )
        self.held_views = heldout_views(cfg)
        torch.manual_seed(cfg.seed)
        self.model = build_lifter(cfg.arch, hp)
        if cfg.init:  # train on from saved weights (a resumed run's last.pt still wins: see resume)
            start, spec = load_lifter(cfg.init)
            if dict(spec["hyperparams"]) != hp:
                raise ValueError(f"--init {cfg.init} has other hyperparameters than this run: {spec['hyperparams']}")
            self.model.load_state_dict(start.state_dict())
            self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.rng = np.random.default_rng(cfg.seed)

    def resume(self) -> tuple[int, float]:
        """Load ``last.pt`` when resuming and it exists: its ``(step, seconds)``, else ``(0, 0.0)``."""
        cfg, ckpt_path = self.cfg, self.out / "last.pt"
        if not (cfg.resume and ckpt_path.is_file()):
            return 0, 0.0
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        saved = json.loads(ckpt["config"])
        keys = ("arch", "config", "overrides", "window", "steps", "batch", "lr", "warmup", "seed", "data")
        if any(saved.get(k) != asdict(cfg).get(k) for k in keys):
            raise ValueError(f"{ckpt_path} was made with other settings ({ {k: saved.get(k) for k in keys} })")
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.rng.bit_generator.state = json.loads(ckpt["numpy_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        return int(ckpt["step"]), float(ckpt["seconds"])

    def train_step(self, step: int, clock: _RunClock) -> tuple[float, dict[str, torch.Tensor]]:
        """One optimiser step on fresh synthetic views: its learning rate and loss terms."""
        cfg, model, rng = self.cfg, self.model, self.rng
        model.train()
        frames = window_length(rng, cfg.window)
        batch = max(cfg.batch, min(4 * cfg.batch, cfg.batch * cfg.window // frames))
        inputs, target, mm = synth.training_views(
            rng, self.sampler.sample(rng, batch, frames), cfg.crop_fraction, cfg.clean_fraction, self.cameras
        )
        lr = learning_rate(cfg, step, clock.seconds())
        for group in self.opt.param_groups:
            group["lr"] = lr
        terms = lifting_loss(model(torch.from_numpy(inputs)), torch.from_numpy(target), torch.from_numpy(mm))
        self.opt.zero_grad(set_to_none=True)
        terms["loss"].backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        self.opt.step()
        return lr, terms

    def heldout(self) -> dict[str, float]:
        """Held-out MPJPE (mm) of the model, in eval mode, per view (clean, noisy)."""
        self.model.eval()
        return {k: heldout_mpjpe(self.model, v) for k, v in self.held_views.items()}

    def log_heldout(
        self, step: int, clock: _RunClock, lr: float, losses: list[float], mpjpes: list[float]
    ) -> dict[str, float]:
        """``heldout()``, appended to ``curve.csv`` with the training means of the steps since the last row."""
        last_eval = self.heldout()
        row = [step, clock.seconds(), lr, np.mean(losses), np.mean(mpjpes)]
        row += [last_eval["clean"], last_eval["noisy"]]
        with (self.out / "curve.csv").open("a", encoding="utf-8") as f:
            f.write(",".join(f"{v:.6g}" for v in row) + "\n")
        return last_eval

    def checkpoint(self, step: int, clock: _RunClock) -> None:
        """Save ``last.pt``, all ``resume`` needs to go on as if never stopped (via a temporary file: a run
        stopped while saving keeps its previous checkpoint)."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": step,
            "seconds": clock.seconds(),
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "config": json.dumps(asdict(self.cfg)),
        }
        path = self.out / "last.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def write_weights(self, name: str, hp: dict[str, Any], heldout: dict[str, float], seconds: float) -> Path:
        """Write the weights and their description (plus an fp32 copy when saving fp16); where they went."""
        cfg = self.cfg
        weights = Path(cfg.weights) if cfg.weights else self.out / "model.safetensors"
        spec = {
            "arch": cfg.arch,
            "config": cfg.name or name,
            "hyperparams": hp,
            "window": cfg.window,
            "training": {**asdict(cfg), "seconds": round(seconds, 1), "torch_threads": torch.get_num_threads()},
            "heldout_mpjpe_mm": {k: round(v, 2) for k, v in heldout.items()},
        }
        save_weights(self.model, weights, spec, fp16=cfg.fp16)
        if cfg.fp16:  # keep full precision too, to check that half precision costs no accuracy
            save_weights(self.model, self.out / "fp32.safetensors", spec, fp16=False)
        return weights


def _train_until(run: _Run, step: int, clock: _RunClock, progress: Progress) -> tuple[int, bool, dict[str, float]]:
    """Train from ``step`` (a run not yet done) until it is done or reaches ``until``: held-out rows every
    ``eval_every`` steps and at the end, checkpoints every ``checkpoint_every`` steps, at the end and at
    ``until``. The step reached, whether the run is done, and the last held-out MPJPEs ({} if none)."""
    cfg = run.cfg
    losses: list[float] = []
    mpjpes: list[float] = []
    last_eval: dict[str, float] = {}
    done = False
    while not done and not (0 < cfg.until <= step):
        lr, terms = run.train_step(step, clock)
        step += 1
        clock.tick()
        losses.append(terms["loss"].item())
        mpjpes.append(terms["mpjpe"].item())
        done = fraction_done(cfg, step, clock.seconds()) >= 1.0
        pause = 0 < cfg.until <= step
        if step % cfg.eval_every == 0 or done:
            last_eval = run.log_heldout(step, clock, lr, losses, mpjpes)
            losses, mpjpes = [], []
        if step % cfg.checkpoint_every == 0 or done or pause:
            run.checkpoint(step, clock)
        frac = fraction_done(cfg, step, clock.seconds())
        held = {f"held_{k}": v for k, v in last_eval.items()}
        progress.update(step, fraction=frac, loss=terms["mpjpe"].item(), **held)
    return step, done, last_eval


def train(cfg: TrainConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Run (or resume) training; return the final held-out metrics and where the weights went.

    Raises ``FileNotFoundError`` / ``ValueError`` for missing data or bad settings, and ``ValueError`` when
    resuming a run directory whose checkpoint was made with other settings.
    """
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    name, hp = hyperparams(cfg)
    run = _Run(cfg, hp)
    step, elapsed = run.resume()
    if step == 0:
        (run.out / "curve.csv").write_text(",".join(CURVE_FIELDS) + "\n", encoding="utf-8")
    progress = progress or Progress(cfg.steps)
    progress.start(step)
    clock = _RunClock(elapsed)
    last_eval: dict[str, float] = {}
    done = fraction_done(cfg, step, elapsed) >= 1.0
    if not done:
        step, done, last_eval = _train_until(run, step, clock, progress)
    progress.finish()
    run.model.eval()
    seconds = clock.seconds()
    if not done:
        return {"weights": None, "seconds": seconds, "heldout_mpjpe_mm": last_eval, "steps": step}
    if not last_eval:  # resumed a finished run
        last_eval = run.heldout()
    weights = run.write_weights(name, hp, last_eval, seconds)
    return {"weights": str(weights), "seconds": seconds, "heldout_mpjpe_mm": last_eval, "steps": step}
