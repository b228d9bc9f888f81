"""What a model size costs to serve: parameters, FLOPs per frame, latency per window, frames per second.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one window (matmuls and attention; the
convention of MOTIONBERT.md's figures). Latency is measured on the TorchScript module exactly as ``motionlift
export`` writes it and the service loads it, for the serving pattern of a live stream with an answer per frame:
one batch of two windows (the window and its mirror image, the flip test) per frame, so
``stream_fps = 1000 / latency_ms`` is how many frames per second one stream can be answered at.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from service.model.checkpoint import count_parameters
from service.model.dstformer import DSTformer
from service.model.export import export_torchscript, load_torchscript, model_meta


def flops_per_frame(model: torch.nn.Module, window: int) -> float:
    """FLOPs of one forward pass over a ``window``-frame window, divided by ``window``."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, window, 17, 3))
    return float(counter.get_total_flops()) / window


def latency_ms(model: DSTformer, window: int, *, batch: int = 2, repeats: int = 50, threads: int = 2) -> float:
    """Median wall time (ms) of one call on ``batch`` windows of ``window`` frames, through TorchScript, with
    ``threads`` intra-op threads (restored afterwards); after 10 warm-up calls."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "model.pt"
            meta = model_meta("bench", {}, model, window=window, trained=False, weights="bench")
            export_torchscript(model, out, meta)
            module, _ = load_torchscript(out)
        x = torch.randn(batch, window, 17, 3)
        times = []
        with torch.inference_mode():
            for i in range(10 + repeats):
                t0 = time.perf_counter()
                module(x)
                if i >= 10:
                    times.append(1000 * (time.perf_counter() - t0))
        return statistics.median(times)
    finally:
        torch.set_num_threads(before)


def profile(
    hparams: dict[str, Any], windows: list[int], *, threads: int = 2, repeats: int = 50
) -> list[dict[str, Any]]:
    """One row per window length: params, MFLOP per frame, flip-pair latency (ms) and stream frames/s."""
    model = DSTformer(**hparams).eval()
    rows = []
    for window in windows:
        ms = latency_ms(model, window, threads=threads, repeats=repeats)
        rows.append(
            {
                "params": count_parameters(model),
                "window": window,
                "mflop_per_frame": round(flops_per_frame(model, window) / 1e6, 2),
                "pair_latency_ms": round(ms, 2),
                "stream_fps": round(1000.0 / ms, 1),
            }
        )
    return rows
