"""Raw model throughput: frames/s and achieved GFLOP/s per configuration, precision, window length and batch
size, each next to this machine's matrix-multiply peak in that precision, measured in the same run.

The VM's throughput drifts (about ±25% between runs), so each precision's peak is measured twice, before and
after that precision's model rows, and the larger of the two is the reference for "% peak".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.bench.peak import (
    GEMM_SHAPES,
    Peak,
    Shape,
    matmul_peak,
    timed,
)
from service.model.precision import torch_dtype

if TYPE_CHECKING:
    import torch

__all__ = ["ModelRow", "Report", "flops_per_window", "measure", "run"]

# `default`: the trained default model (its description beside the weights gives the hyperparameters).
DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "model" / "weights" / "default.json"
# Longer than any window: every Attention takes the explicit matmul + softmax path.
_ALWAYS_MATERIALISED = 10**9


@dataclass(frozen=True)
class ModelRow:
    config: str  # "<name>-official" for the official-style eager baseline
    precision: str
    scripted: bool
    window: int
    batch: int
    ms_per_call: float
    frames_per_s: float
    gflops: float  # achieved GFLOP/s
    # The peak GEMM shape's GFLOP/s timed right before and right after this row (the larger): this VM's speed
    # drifts by up to 25% over minutes, and a row is fairly compared with the machine as it was at that time.
    local_peak: float | None = None


@dataclass
class Report:
    """One run: per precision, the peaks measured before and after its rows; the rows; notes for the reader."""

    threads: int
    peaks: dict[str, tuple[Peak, Peak]] = field(default_factory=dict)
    rows: list[ModelRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def peak_gflops(self, precision: str) -> float:
        """The reference peak of ``precision``: the larger of its two measurements (KeyError if not measured)."""
        return max(p.gflops for p in self.peaks[precision])

    def vs_batch1(self, row: ModelRow) -> float | None:
        """frames/s of ``row`` over that of batch 1 with the same config, precision and window (None: no such
        row)."""
        key = (row.config, row.precision, row.window)
        base = next((r for r in self.rows if (r.config, r.precision, r.window) == key and r.batch == 1), None)
        return None if base is None else row.frames_per_s / base.frames_per_s


def resolve_bench_config(name: str) -> tuple[str, dict[str, Any]]:
    """``(label, hyperparameters)`` of a config: ``default`` is the trained default model
    (service/model/weights/default.json); a trained model's JSON description gives its hyperparameters;
    anything else goes to ``resolve_config`` (full, lite, small, tiny or a hyperparameter file).

    Raises ``ValueError`` for an unknown name or a bad file.
    """
    from service.model.configs import resolve_config
    from service.model.trained import resolve_export_config

    trained = resolve_export_config(str(DEFAULT_SPEC) if name == "default" else name)
    if trained is not None:
        return ("default" if name == "default" else trained[0]), trained[1]
    return resolve_config(name)


def materialise_attention(model: Any) -> None:
    """Make every ``Attention`` of ``model`` (eager) compute softmax(q kᵀ) v with explicit matmuls at every
    length, as the official MotionBERT code does, instead of the fused kernel above ``FUSED_MIN_LENGTH``."""
    from service.model.dstformer import Attention

    for module in model.modules():
        if isinstance(module, Attention):
            # Final only for TorchScript (a compile-time constant); on the eager module it is a plain attribute.
            module.fused_min_length = _ALWAYS_MATERIALISED  # type: ignore[misc]


def flops_per_window(hparams: Mapping[str, Any], window: int) -> float:
    """FLOPs of one window (batch 1) of the fp32 eager model, counted by torch's FlopCounterMode.

    Counted on the meta device (shapes only: free at any size) with attention materialised: FlopCounterMode
    does not count the CPU fused attention kernel, so attention above ``FUSED_MIN_LENGTH`` frames would be
    missing, while the two matmuls are counted (4·L²·d per head and sequence; the fused kernel does the same
    work). Matmuls only: softmax, LayerNorm, GELU and additions are not counted.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from service.model.dstformer import DSTformer

    with torch.device("meta"):
        model = DSTformer(**hparams)
        materialise_attention(model)
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            model.eval()(torch.zeros(1, window, model.num_joints, model.dim_in))
    return float(counter.get_total_flops())


def measure(
    config: str,
    windows: Sequence[int],
    batches: Sequence[int],
    *,
    seconds: float,
    precision: str = "fp32",
    official: bool = False,
    max_call_seconds: float = 0.0,
    rate_hint: float | None = None,
    notes: list[str] | None = None,
    probe: Callable[[], float] | None = None,
) -> list[ModelRow]:
    """Throughput of a seeded random model of ``config`` (speed does not depend on the weights), one row per
    window x batch, each timed for ``seconds`` (see ``timed``).

    The model is cast to ``precision`` and scripted (input and output stay float32). ``official``: instead, the
    eager fp32 model with attention always materialised (``materialise_attention``), labelled
    ``<config>-official``; ``precision`` must then be fp32. Windows longer than the config's ``maxlen`` are
    skipped; with ``max_call_seconds`` > 0, so is a row whose predicted time per call (its FLOPs over the best
    GFLOP/s of this call's rows so far, or ``rate_hint`` before the first) exceeds it. Each skip appends a line
    to ``notes``. ``probe`` (optional) returns the machine's current peak GFLOP/s; it runs before and after each
    row, and the larger result is the row's ``local_peak``. Raises ``ValueError`` for a bad config or precision.
    """
    import torch

    dtype = torch_dtype(precision)
    if official and precision != "fp32":
        raise ValueError("the official-style baseline is fp32 only")
    name, hparams = resolve_bench_config(config)
    label = f"{name}-official" if official else name
    notes = [] if notes is None else notes
    maxlen = int(hparams.get("maxlen", 243))
    too_long = [w for w in windows if w > maxlen]
    if too_long:
        notes.append(f"{label}: window(s) {', '.join(map(str, too_long))} skipped (longer than its maxlen {maxlen})")
    model = _bench_model(hparams, dtype, official=official)
    rows: list[ModelRow] = []
    for window in (w for w in windows if w <= maxlen):
        flops = flops_per_window(hparams, window)
        for batch in batches:
            skip = _too_slow(batch * flops, max((r.gflops for r in rows), default=rate_hint), max_call_seconds)
            if skip:
                notes.append(f"{label} {precision} window {window} batch {batch} skipped: {skip}")
                continue
            x = torch.randn(batch, window, int(hparams.get("num_joints", 17)), int(hparams.get("dim_in", 3)))
            per_call, local = _time_call(model, x, seconds, probe)
            speed = (1000 * per_call, batch * window / per_call, batch * flops / per_call / 1e9)
            rows.append(ModelRow(label, precision, not official, window, batch, *speed, local))
    return rows


def _bench_model(hparams: Mapping[str, Any], dtype: torch.dtype, *, official: bool) -> Any:
    """The seeded model ``measure`` times: scripted in ``dtype``, or eager with attention materialised."""
    from service.model.checkpoint import build_model
    from service.model.export import script

    eager = build_model(hparams, seed=0)
    if official:
        materialise_attention(eager)
        return eager
    return script(eager.to(dtype))


def _too_slow(flops: float, rate: float | None, max_call_seconds: float) -> str:
    """Why a call of ``flops`` is skipped ("" to run it): at ``rate`` GFLOP/s it would take over the limit."""
    predicted = flops / (rate * 1e9) if rate else 0.0
    if max_call_seconds > 0 and predicted > max_call_seconds:
        return f"predicted {predicted:,.0f} s per call at {rate:,.1f} GFLOP/s > max {max_call_seconds:g} s"
    return ""


def _time_call(
    model: Any, x: torch.Tensor, seconds: float, probe: Callable[[], float] | None
) -> tuple[float, float | None]:
    """Seconds per call of ``model`` on ``x`` (``timed``), and the larger ``probe`` result before and after it."""
    import torch

    def call() -> object:
        with torch.inference_mode():
            return model(x)

    local_before = probe() if probe is not None else None
    per_call = timed(call, min_seconds=seconds)
    local = None if probe is None or local_before is None else max(local_before, probe())
    return per_call, local


def run(
    configs: Sequence[str],
    windows: Sequence[int],
    batches: Sequence[int],
    *,
    precisions: Sequence[str] = ("fp32",),
    seconds: float = 2.0,
    official: bool = False,
    shapes: Sequence[Shape] = GEMM_SHAPES,
    max_call_seconds: float = 0.0,
) -> Report:
    """The whole benchmark: for each precision, the matmul peak, every config's rows (``measure``), the
    official-style rows when ``official`` (in the fp32 block, which then always runs), and the peak again.

    Configs, precisions, windows and batches are all checked before anything is timed: ``ValueError`` for an
    unknown config or precision, an empty list, or a window or batch below 1.
    """
    import torch

    if not configs or not windows or not batches or not precisions:
        raise ValueError("configs, windows, batches and precisions must each name at least one value")
    if min(*windows, *batches) < 1:
        raise ValueError(f"windows and batches must be >= 1, got {list(windows)} and {list(batches)}")
    for precision in precisions:
        torch_dtype(precision)
    for config in configs:
        resolve_bench_config(config)
    report = Report(threads=torch.get_num_threads())
    for precision in dict.fromkeys([*precisions, *(["fp32"] if official else [])]):
        before = matmul_peak(precision, seconds=seconds, shapes=shapes)

        def probe(precision: str = precision, shape: Shape = before.shape) -> float:
            return matmul_peak(precision, seconds=min(seconds, 1.0), shapes=[shape]).gflops

        runs = [(c, False) for c in configs if precision in precisions]
        runs += [(c, True) for c in configs if official and precision == "fp32"]
        for config, is_official in runs:
            rate_hint = max((r.gflops for r in report.rows if r.precision == precision), default=None)
            report.rows += measure(
                config,
                windows,
                batches,
                seconds=seconds,
                precision=precision,
                official=is_official,
                max_call_seconds=max_call_seconds,
                rate_hint=rate_hint,
                notes=report.notes,
                probe=probe,
            )
        report.peaks[precision] = (before, matmul_peak(precision, seconds=seconds, shapes=shapes))
    if official:
        report.notes.append("*-official: eager (not scripted) fp32 model, attention materialised at every length")
    return report
