"""``motionlift plan``: the hardware a workload needs, from this project's measured CPU figures and its documented
GPU estimate.

The unit of model work is the **model frame**: one frame of one window through the model once (a flipped window
is two passes). A causal 30 fps stream needs one whole window per answered frame; a look-ahead stream with hop h
one window per h frames; a request of T frames the windows ``service.core.windows.plan`` cuts it into. The work
in FLOPs comes from the model's own hyperparameters (counted on the meta device, ``flops_per_window``).

Rates (what one unit of hardware does in counted matmul FLOPs per second), per model width:

- **CPU, measured** on this project's 2-core AMD EPYC VM (AVX2, no AVX-512; fp32; one process, both cores), README
  "Model speed" and "Streaming benchmark": the full model (width 512) 74.2 frames/s of 243-frame windows at
  1.526 GFLOP per frame = 56.6 GFLOP/s per core; lite (256) 173.3 frames/s x 0.585 = 50.7 per core; the trained
  default (64) 129 windows/s of 27 frames x 0.270 GFLOP = 17.4 per core (small models spend most of their time
  outside the GEMMs). Widths in between are interpolated on log2(width).
- **GPU, an estimate on paper** (README "H100 estimate"): H100 SXM, bf16, the full model at 150,000-240,000 frames/s
  in batches of 16 or more windows = 229-366 TFLOP/s counted. Smaller widths are scaled by the CPU's relative
  efficiency at that width, which flatters them: a small model on a GPU is bound by kernel launches, not FLOPs.
- **Gateway, measured**: 2.6 ms of gateway CPU per 27-frame REST request (README "Batching and performance",
  batched); a stream frame is counted as one request (not measured on its own: an upper bound).

Units are sized to run at ``--utilisation`` (default 0.7) of these rates, so queues stay short. Prices are
assumptions to replace with yours (``--gpu-hour-usd``, ``--core-hour-usd``).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.bench.table import render

CPU_GFLOPS_PER_CORE = {64: 17.4, 256: 50.7, 512: 56.6}  # measured, see the module docstring
GPU_TFLOPS_FULL = (229.0, 366.0)  # H100 bf16, estimated on paper
GATEWAY_CORE_S_PER_MESSAGE = 0.0026
GATEWAY_CORES = 2  # per gateway replica


def cpu_rate(width: int) -> float:
    """Counted GFLOP/s per CPU core for a model of ``width`` (dim_feat), interpolated on log2(width)."""
    known = sorted(CPU_GFLOPS_PER_CORE)
    if width <= known[0]:
        return CPU_GFLOPS_PER_CORE[known[0]]
    if width >= known[-1]:
        return CPU_GFLOPS_PER_CORE[known[-1]]
    low = max(w for w in known if w <= width)
    high = min(w for w in known if w >= width)
    if low == high:
        return CPU_GFLOPS_PER_CORE[low]
    f = (math.log2(width) - math.log2(low)) / (math.log2(high) - math.log2(low))
    return CPU_GFLOPS_PER_CORE[low] + f * (CPU_GFLOPS_PER_CORE[high] - CPU_GFLOPS_PER_CORE[low])


@dataclass(frozen=True)
class Workload:
    """What the service must answer per second: ``streams`` cameras at ``fps`` (answered frame by frame, one
    window per ``hop`` frames) and ``requests`` per second of ``frames`` frames each."""

    streams: int = 0
    fps: float = 30.0
    hop: int = 1
    requests: float = 0.0
    frames: int = 0
    flip: bool = True

    def windows_per_s(self, window: int) -> float:
        """Model windows per second (flip not counted)."""
        from service.core.windows import plan

        per_request = len(plan(self.frames, window, window // 4)) if self.frames else 0
        return self.streams * self.fps / self.hop + self.requests * per_request

    def messages_per_s(self) -> float:
        """Requests and stream frames the gateway parses per second."""
        return self.streams * self.fps + self.requests

    def answered_frames_per_s(self) -> float:
        return self.streams * self.fps + self.requests * self.frames


@dataclass(frozen=True)
class Plan:
    tflops: float  # counted matmul TFLOP/s the workload needs
    model_frames_per_s: float
    cpu_cores: int
    gpus: tuple[int, int]  # at the high and the low end of the GPU estimate
    gateway_replicas: int
    answered_per_s: float
    per_core: float  # answered frames/s one CPU core serves of this workload (model and gateway), at utilisation
    per_gpu: tuple[float, float]  # the same for one GPU, low and high end of the estimate


def make_plan(work: Workload, *, flops_per_window: float, window: int, width: int, utilisation: float) -> Plan:
    """Size CPU cores (embedded model), GPUs (Triton) and gateway replicas for ``work`` (see the module)."""
    passes = 2 if work.flip else 1
    windows = work.windows_per_s(window) * passes
    flops = windows * flops_per_window
    cpu = flops / 1e9 / (cpu_rate(width) * utilisation)
    relative = cpu_rate(width) / CPU_GFLOPS_PER_CORE[512]
    gpus = tuple(math.ceil(flops / 1e12 / (t * relative * utilisation)) if flops else 0 for t in GPU_TFLOPS_FULL)
    gateway = work.messages_per_s() * GATEWAY_CORE_S_PER_MESSAGE / utilisation
    answered = work.answered_frames_per_s()
    gpu_units = [flops / 1e12 / (t * relative * utilisation) for t in GPU_TFLOPS_FULL]
    return Plan(
        tflops=flops / 1e12,
        model_frames_per_s=windows * window,
        cpu_cores=math.ceil(cpu + gateway),
        gpus=(gpus[1], gpus[0]),
        gateway_replicas=max(1, math.ceil(gateway / GATEWAY_CORES)),
        answered_per_s=answered,
        per_core=answered / (cpu + gateway),
        per_gpu=(answered / gpu_units[0], answered / gpu_units[1]),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from service.config import DEFAULT_MODEL

    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="a config name (full, lite, small, tiny) "
                        "or an exported TorchScript file (its hyperparameters and window); default: the default "
                        "model")  # fmt: skip
    parser.add_argument("--window", type=int, help="frames per window (default: the model's)")
    parser.add_argument("--streams", type=int, default=0, help="live streams, each answered frame by frame")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second of each stream")
    parser.add_argument("--hop", type=int, default=1, help="look-ahead streams: frames one window answers")
    parser.add_argument("--requests-per-s", type=float, default=0.0, help="whole-sequence requests per second")
    parser.add_argument("--frames", type=int, default=243, help="frames per request")
    parser.add_argument("--no-flip", dest="flip", action="store_false", help="without the flip test (half the work)")
    parser.add_argument("--utilisation", type=float, default=0.7, help="how busy each unit may run (0-1]")
    parser.add_argument("--gpu-hour-usd", type=float, default=3.0, help="price of one GPU-hour (an assumption)")
    parser.add_argument("--core-hour-usd", type=float, default=0.04, help="price of one CPU core-hour (an assumption)")


def _model(name: str) -> tuple[str, dict[str, Any], int]:
    """(label, hyperparameters, window) of a config name or an exported model file."""
    if Path(name).is_file():
        from service.model.export import read_meta

        meta = read_meta(name)
        return f"{meta['config']} ({Path(name).name})", dict(meta["hyperparams"]), int(meta["window"])
    from service.model.configs import resolve_config

    label, hparams = resolve_config(name)
    return label, dict(hparams), int(hparams["maxlen"])


def run(args: argparse.Namespace) -> int:
    problems = [
        (args.streams < 0 or args.requests_per_s < 0, "--streams and --requests-per-s must not be negative"),
        (args.streams == 0 and args.requests_per_s == 0, "give --streams N and/or --requests-per-s R"),
        (not 0 < args.utilisation <= 1, "--utilisation must be in (0, 1]"),
        (args.fps <= 0 or args.hop < 1 or args.frames < 1, "--fps must be positive, --hop and --frames at least 1"),
    ]
    for wrong, message in problems:
        if wrong:
            print(f"motionlift plan: {message}")
            return 2
    try:
        label, hparams, window = _model(args.model)
    except (ValueError, OSError) as exc:
        print(f"motionlift plan: --model: {exc}")
        return 2
    window = args.window or window
    from service.bench.model import flops_per_window

    work = Workload(args.streams, args.fps, args.hop, args.requests_per_s, args.frames, args.flip)
    width = int(hparams["dim_feat"])
    plan = make_plan(work, flops_per_window=flops_per_window(hparams, window), window=window, width=width,
                     utilisation=args.utilisation)  # fmt: skip
    print(describe(plan, label=label, window=window, work=work, args=args))
    return 0


def describe(plan: Plan, *, label: str, window: int, work: Workload, args: argparse.Namespace) -> str:
    """The plan as the command prints it: the workload, a table of units, the cost per million answered frames."""
    asked = []
    if work.streams:
        asked.append(f"{work.streams} streams x {work.fps:g} fps (one window per {work.hop} frame(s))")
    if work.requests:
        asked.append(f"{work.requests:g} requests/s x {work.frames} frames")
    hours = 1e6 / plan.answered_per_s / 3600  # hours to answer a million frames
    gateway_usd = plan.gateway_replicas * GATEWAY_CORES * args.core_hour_usd * hours
    gpu_usd = [g * args.gpu_hour_usd * hours for g in plan.gpus]
    rows = [
        ["CPU cores, embedded model (fp32, AVX2)", str(plan.cpu_cores), _rate(plan.per_core),
         "measured on this project's VM", f"${plan.cpu_cores * args.core_hour_usd * hours:.2f}"],
        ["H100 GPUs, Triton (bf16)", _span(*plan.gpus, "{:d}"), f"{_rate(plan.per_gpu[0])}-{_rate(plan.per_gpu[1])}",
         "estimate on paper, not measured", _span(gpu_usd[0], gpu_usd[1], "${:.2f}")],
        [f"gateway replicas ({GATEWAY_CORES} cores each, beside Triton)", str(plan.gateway_replicas), "",
         "measured: 2.6 ms CPU per request", f"${gateway_usd:.2f}"],
    ]  # fmt: skip
    return "\n".join([
        f"model: {label}, window {window}, flip {'on' if work.flip else 'off'}; workload: {' + '.join(asked)}",
        f"needs {plan.model_frames_per_s:,.0f} model frames/s = {plan.tflops:.3g} TFLOP/s (counted matmuls), "
        f"answering {plan.answered_per_s:,.0f} frames/s; units sized at {args.utilisation:.0%} busy",
        "",
        render(["", "units", "answered frames/s per unit", "basis", "per million answered frames"], rows),
        "",
        f"prices assumed: ${args.gpu_hour_usd:g} per GPU-hour, ${args.core_hour_usd:g} per core-hour "
        "(--gpu-hour-usd, --core-hour-usd); see service/bench/plan.py for every figure's source",
    ])  # fmt: skip


def _span(low: float, high: float, form: str) -> str:
    return form.format(low) if form.format(low) == form.format(high) else f"{form.format(low)}-{form.format(high)}"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"
