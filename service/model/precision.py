"""Compute precisions of the model: their names and torch dtypes (export stores the weights in one, the
in-process runner computes in one, evaluation compares them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    import torch

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: Final[tuple[Precision, ...]] = ("fp32", "bf16", "fp16")


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a precision name; ``ValueError`` naming the choices for anything else."""
    import torch  # here, so the names above serve command-line parsers without torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return dtypes[precision]
