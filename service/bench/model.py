"""Raw model throughput: frames/s and achieved GFLOP/s per configuration, window length and batch size,
next to this machine's measured fp32 matrix-multiply peak (so every figure is also a fraction of the limit)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelRow:
    config: str
    window: int
    batch: int
    ms_per_call: float
    frames_per_s: float
    gflops: float  # achieved GFLOP/s


def timed(call: Callable[[], object], *, min_seconds: float, min_calls: int = 3) -> float:
    """Median-free steady timing: seconds per call over at least ``min_calls`` calls and ``min_seconds``."""
    call()  # one more warm-up call of this exact shape
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        call()
        calls += 1
    return (time.perf_counter() - start) / calls


def matmul_peak_gflops(size: int = 2048, seconds: float = 2.0) -> float:
    """fp32 GEMM throughput of this machine with torch's current thread settings."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    per_call = timed(lambda: torch.mm(a, b), min_seconds=seconds)
    return 2 * size**3 / per_call / 1e9


def flops_per_window(model: Any, window: int) -> float:
    """FLOPs of one window (batch 1), counted by torch's FlopCounterMode on the eager model."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, window, 17, 3))
    return float(counter.get_total_flops())


def measure(
    config: str, windows: Sequence[int], batches: Sequence[int], *, seconds: float, scripted: bool = True
) -> list[ModelRow]:
    """Throughput of a seeded random model of ``config`` (speed does not depend on the weights)."""
    import torch

    from service.model.checkpoint import build_model
    from service.model.configs import resolve_config
    from service.model.export import script

    _, hparams = resolve_config(config)
    eager = build_model(hparams, seed=0)
    model = script(eager) if scripted else eager
    rows = []
    for window in windows:
        flops = flops_per_window(eager, window)
        for batch in batches:
            x = torch.randn(batch, window, 17, 3)

            def call(x: torch.Tensor = x) -> object:
                with torch.inference_mode():
                    return model(x)

            per_call = timed(call, min_seconds=seconds)
            rows.append(
                ModelRow(
                    config, window, batch, 1000 * per_call, batch * window / per_call, batch * flops / per_call / 1e9
                )
            )
    return rows
