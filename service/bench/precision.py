"""What a lower precision costs in accuracy: max abs error against fp32 on fixed inputs, per config.

The inputs are the golden reference's (``tests/fixtures/golden_tiny.npz``: two normalised sequences per length,
the official MotionBERT test inputs), so the figure is reproducible anywhere; the model is the given
checkpoint or a seeded random one. The held-out MPJPE change of the trained default is
``motionlift evaluate --precisions fp32,bf16,fp16`` (it needs the mocap data).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.model.precision import torch_dtype

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "golden_tiny.npz"


@dataclass(frozen=True)
class ErrorRow:
    config: str
    precision: str
    window: int
    max_abs: float  # max |y - y_fp32| over every joint coordinate
    scale: float  # max |y_fp32|, the output's own magnitude
    seconds: float  # wall time of the low-precision call


def measure_errors(
    config: str,
    precisions: Sequence[str],
    windows: Sequence[int],
    *,
    checkpoint: str | None = None,
    golden: Path = GOLDEN,
) -> list[ErrorRow]:
    """One row per precision and window: the golden input ``input_t<window>`` (``[2, T, 17, 3]``) through the
    fp32 model and through a copy cast to each precision. Raises ``ValueError`` for an unknown config or
    precision, or a window the golden file has no input for (the message lists those it has)."""
    import copy

    import torch

    from service.model.checkpoint import build_model
    from service.model.configs import resolve_config

    _, hparams = resolve_config(config)
    dtypes = [torch_dtype(p) for p in precisions]
    with np.load(golden) as z:
        inputs = {int(k.removeprefix("input_t")): z[k] for k in z.files if k.startswith("input_t")}
    missing = [w for w in windows if w not in inputs]
    if missing:
        raise ValueError(f"no golden input for window(s) {missing}; there are {sorted(inputs)}")
    fp32 = build_model(hparams, checkpoint=checkpoint, seed=0)
    rows = []
    with torch.inference_mode():
        for window in windows:
            x = torch.from_numpy(inputs[window])
            reference = fp32(x)
            for precision, dtype in zip(precisions, dtypes, strict=True):
                low = copy.deepcopy(fp32).to(dtype)
                start = time.perf_counter()
                y = low(x)
                seconds = time.perf_counter() - start
                rows.append(
                    ErrorRow(
                        config,
                        precision,
                        window,
                        float((y - reference).abs().max()),
                        float(reference.abs().max()),
                        seconds,
                    )
                )
    return rows
