"""This machine's matrix-multiply peak per precision, and the steady-state timer every benchmark shares.

The peak is the best GFLOP/s over several GEMM shapes, each run as ``nn.Linear`` runs it
(``torch.addmm(bias, a, w.t())``): a square one and the DSTformer's own Linear shapes. A single square GEMM can
miss what the model's (tall, skinny) GEMMs reach with the same library, or overstate it; the best of both is the
ceiling the model's figures are compared with.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.model.precision import torch_dtype

if TYPE_CHECKING:
    import torch

Shape = tuple[int, int, int]  # (M, K, N) of addmm(bias[N], a[M, K], w[N, K].t()): M tokens, K in, N out

# Smallest first: the 512 probe bounds the cost of the larger ones (see matmul_peak). The model shapes are the
# full config at its longest window, 243 frames x 17 joints = 4131 tokens: the MLP's fc2 (1024 -> 512) and the
# attention's qkv (512 -> 1536).
GEMM_SHAPES: tuple[Shape, ...] = ((512, 512, 512), (4131, 1024, 512), (4131, 512, 1536), (2048, 2048, 2048))

# A GEMM shape predicted to take longer than this per call is skipped (bf16 / fp16 on CPUs without native
# support run at a few GFLOP/s: a 2048^3 GEMM would take seconds per call).
MAX_GEMM_CALL_SECONDS = 2.0


# A first call at least this long is followed by the timed call at once, without a second warm-up call:
# TorchScript's one-time costs (the profiling run, then optimising the graph on the next call; about 0.1-0.3 s
# measured here on the tiny and full configs) are then a few % of the call, and a very slow row (bf16 on a CPU
# without native bf16) costs two calls instead of three.
LONG_CALL_SECONDS = 5.0


def timed(call: Callable[[], object], *, min_seconds: float, min_calls: int = 3) -> float:
    """Seconds per call of ``call`` in steady state: the mean over at least ``min_calls`` calls and at least
    ``min_seconds`` of wall time, after warm-up.

    Warm-up is two calls (TorchScript's profiling executor profiles a new input shape on one call and
    optimises on the next), or one when that call took ``LONG_CALL_SECONDS`` or more. With ``min_seconds`` > 0,
    if the last warm-up call took ``min_seconds`` or more the call is timed once whatever ``min_calls``: one
    long call averages its own noise, and a slow row costs three calls at most (two past ``LONG_CALL_SECONDS``).
    """
    last = _seconds(call)
    if last < LONG_CALL_SECONDS:
        last = _seconds(call)
    if min_seconds > 0 and last >= min_seconds:
        min_calls = 1
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        call()
        calls += 1
    return (time.perf_counter() - start) / calls


def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Peak:
    """The best GEMM throughput of one precision, the shape that gave it, and the shapes not run."""

    precision: str
    gflops: float
    shape: Shape
    skipped: tuple[Shape, ...] = ()


def shape_text(shape: Shape) -> str:
    return "x".join(str(v) for v in shape)


def matmul_peak(
    precision: str = "fp32",
    *,
    seconds: float = 1.0,
    shapes: Sequence[Shape] = GEMM_SHAPES,
    max_call_seconds: float = MAX_GEMM_CALL_SECONDS,
) -> Peak:
    """Best GFLOP/s of ``torch.addmm`` in ``precision`` over ``shapes`` (each timed ``seconds``, see ``timed``)
    with torch's current thread settings.

    Shapes run in the given order; before each, its time per call is predicted from the best rate measured so
    far and the shape is skipped (listed in ``Peak.skipped``) if that exceeds ``max_call_seconds``. The first
    shape always runs, so put a small probe first. Raises ``ValueError`` for an unknown precision or no shapes.
    """
    import torch

    dtype = torch_dtype(precision)
    if not shapes:
        raise ValueError("matmul_peak needs at least one GEMM shape")
    best: tuple[float, Shape] | None = None
    skipped: list[Shape] = []
    gen = torch.Generator().manual_seed(0)
    for m, k, n in shapes:
        flops = 2.0 * m * k * n
        if best is not None and flops / (best[0] * 1e9) > max_call_seconds:
            skipped.append((m, k, n))
            continue
        a = torch.randn(m, k, generator=gen).to(dtype)
        w = torch.randn(n, k, generator=gen).to(dtype)
        bias = torch.randn(n, generator=gen).to(dtype)

        def call(a: torch.Tensor = a, w: torch.Tensor = w, bias: torch.Tensor = bias) -> torch.Tensor:
            return torch.addmm(bias, a, w.t())  # as nn.Linear: y = x wᵀ + b

        per_call = timed(call, min_seconds=seconds)
        gflops = flops / per_call / 1e9
        if best is None or gflops > best[0]:
            best = (gflops, (m, k, n))
    assert best is not None  # the first shape always runs
    return Peak(precision, best[0], best[1], tuple(skipped))


def parse_shapes(text: str) -> list[Shape]:
    """``"512x512x512,4131x1024x512"`` as (M, K, N) triples; ``ValueError`` unless all are positive triples."""
    shapes: list[Shape] = []
    for item in (s for s in text.split(",") if s.strip()):
        try:
            m, k, n = (int(v) for v in item.strip().split("x"))
        except ValueError:
            raise ValueError(f"GEMM shape {item!r} is not MxKxN (e.g. 2048x2048x2048)") from None
        if min(m, k, n) < 1:
            raise ValueError(f"GEMM shape {item!r} must have positive sizes")
        shapes.append((m, k, n))
    return shapes
