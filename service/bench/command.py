"""``motionlift bench ...``: the benchmarks, each a subcommand that prints a table (``service/bench/``).

Heavy imports (torch, the model) happen inside each subcommand's function, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.config import DEFAULT_MODEL


def add_arguments(bench: argparse.ArgumentParser) -> None:
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    _add_model(bench_sub)
    _add_precision(bench_sub)
    _add_load(bench_sub)
    _add_triton(bench_sub)
    _add_soak(bench_sub)
    from service.bench import batching, bigbody, motion, onnx, overload, stream, tracing

    stream.add_command(bench_sub)  # bench stream (service/bench/stream.py)
    overload.add_command(bench_sub)  # bench overload (service/bench/overload.py)
    bigbody.add_command(bench_sub)  # bench bigbody (service/bench/bigbody.py)
    batching.add_command(bench_sub)  # bench batching (service/bench/batching.py)
    onnx.add_command(bench_sub)  # bench onnx (service/bench/onnx.py)
    motion.add_command(bench_sub)  # bench motion (service/bench/motion.py)
    tracing.add_command(bench_sub)  # bench tracing (service/bench/tracing.py)


def run(args: argparse.Namespace) -> int:
    code: int = args.bench_run(args)
    return code


def _add_model(bench_sub: Any) -> None:
    """``bench model``: the raw model against the machine's matmul peak."""
    from service.bench.peak import GEMM_SHAPES, MAX_GEMM_CALL_SECONDS, shape_text

    model = bench_sub.add_parser(
        "model",
        help="raw model frames/s and GFLOP/s per config, precision, window and batch vs the matmul peak",
        description="Seeded random models (speed does not depend on the weights), scripted, timed in-process. "
        "Each precision's matmul peak (best GFLOP/s over --peak-shapes) is measured before and after its rows; "
        "'% peak' uses the larger. FLOPs are those of the matmuls (Linear layers and attention).",
    )
    model.add_argument(
        "--configs",
        default="default,lite,full",
        help="comma-separated: default (the trained default model, maxlen 27), full, lite, small, tiny, "
        "or a JSON hyperparameter file; windows longer than a config's maxlen are skipped",
    )
    model.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16, fp16")
    model.add_argument("--windows", default="27,81,243", help="comma-separated window lengths")
    model.add_argument("--batches", default="1,4,16", help="comma-separated batch sizes")
    model.add_argument(
        "--seconds",
        type=float,
        default=2.0,
        help="time per measurement (model row or GEMM shape), after two warm-up calls; a call slower than this "
        "is timed once (e.g. bf16 on CPUs without native bf16 support: a few GFLOP/s or less), and one slower "
        "than 5 s right after a single warm-up call",
    )
    model.add_argument(
        "--max-call-seconds",
        type=float,
        default=120.0,
        help="skip (with a note) a row whose predicted time per call, from its FLOPs and the best GFLOP/s "
        "measured so far in its precision, exceeds this; 0 = never skip",
    )
    model.add_argument(
        "--official",
        action="store_true",
        help="also time the official-style baseline: eager (not scripted) fp32, attention always materialised "
        "(rows <config>-official)",
    )
    model.add_argument(
        "--peak-shapes",
        default=",".join(map(shape_text, GEMM_SHAPES)),
        help="comma-separated GEMM shapes MxKxN of the peak, smallest first (the first always runs; a later one "
        f"predicted to need over {MAX_GEMM_CALL_SECONDS:g} s per call does not)",
    )
    model.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = torch default)")
    model.add_argument("--out", type=Path, default=None, help="also write the rows to this CSV file")
    model.set_defaults(bench_run=_bench_model)


def _add_precision(bench_sub: Any) -> None:
    """``bench precision``: bf16 / fp16 error against fp32."""
    precision = bench_sub.add_parser("precision", help="max abs error of bf16 / fp16 against fp32 on golden inputs")
    precision.add_argument("--config", default="tiny", help="full, lite, small, tiny or a JSON hyperparameter file")
    precision.add_argument("--checkpoint", default=None, help="weights (official / MMPose); none = seeded random")
    precision.add_argument("--precisions", default="bf16,fp16", help="comma-separated: bf16, fp16")
    precision.add_argument("--windows", default="27,243", help="golden input lengths: 1, 27, 81, 100, 243")
    precision.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = torch default)")
    precision.set_defaults(bench_run=_bench_precision)


def _add_load(bench_sub: Any) -> None:
    """``bench load``: REST + gRPC load sweep, batched vs unbatched vs the raw backend."""
    load = bench_sub.add_parser("load", help="REST + gRPC load sweep: batched vs unbatched vs the raw backend, one run")
    load.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="TorchScript model file")
    load.add_argument("--frames", type=int, default=27, help="frames per sequence (<= the model window)")
    load.add_argument("--concurrency", default="1,8,64", help="comma-separated numbers of concurrent clients")
    load.add_argument("--seconds", type=float, default=10.0, help="duration of each point")
    load.add_argument("--flip", action="store_true", help="flip test-time augmentation (2 windows per request)")
    load.add_argument("--raw-batches", default="1,2,4,8", help="batch sizes of the raw backend measurement")
    load.add_argument("--protocols", default="rest,grpc", help="rest, grpc or both (comma-separated)")
    load.add_argument("--serve-flags", default="", help="extra flags of `motionlift serve` for both setups")
    load.set_defaults(bench_run=_bench_load)


def _add_triton(bench_sub: Any) -> None:
    """``bench triton``: gateway -> Triton vs in-process vs a direct Triton client."""
    triton = bench_sub.add_parser("triton", help="gateway -> Triton vs in-process vs direct Triton client, one run")
    triton.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL.parent.parent, help="<repo>/<model> folder")
    triton.add_argument("--triton-url", default=None, help="Triton gRPC host:port (default: start a local CPU one)")
    triton.add_argument("--frames", type=int, default=27, help="frames per sequence (<= the model window)")
    triton.add_argument("--concurrency", default="1,8,64", help="comma-separated numbers of concurrent clients")
    triton.add_argument("--seconds", type=float, default=10.0, help="duration of each point")
    triton.add_argument("--flip", action="store_true", help="flip test-time augmentation (2 windows per request)")
    triton.add_argument("--serve-flags", default="", help="extra flags of `motionlift serve` for the gateways")
    triton.set_defaults(bench_run=_bench_triton)


def _add_soak(bench_sub: Any) -> None:
    """``bench soak``: a long mixed load with cancellations and disconnects; leaks and unanswered calls."""
    soak = bench_sub.add_parser(
        "soak",
        help="long mixed REST + gRPC + stream load with random cancels and disconnects: unanswered calls, leaks",
        description="Starts `motionlift serve` on free ports and loads it from one child process per kind of call "
        "(asyncio clients): REST lifts, gRPC unary lifts and LiftStreams (30 fps, 1-6 s, causal with one track or "
        "look-ahead with 1-3), each sent on a Poisson schedule; at random 10% of calls are cancelled midway and 10% "
        "disconnected (REST: the socket closes before the answer; gRPC: the call's channel closes), and 5% of "
        "lifts are invalid on purpose. Prints, per interval, calls sent / answered / cancelled / disconnected / "
        "unanswered and the server's RSS, open files and threads; then the verdict: every call answered, RSS "
        "growth after the first interval under 5%, open files back to the pre-load baseline, no stream or queued "
        "window left, no unexpected error, every frame of a stream that ended normally answered or reported "
        "skipped. Exit code 0 when it passes, 1 when it fails (or the server does not start or dies).",
    )
    soak.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="TorchScript model file")
    soak.add_argument("--minutes", type=float, default=10.0, help="duration of the load (the first interval is "
                      "the warm-up)")  # fmt: skip
    soak.add_argument("--every", type=float, default=30.0, help="seconds per interval (a table row each)")
    soak.add_argument(
        "--rate",
        default="rest=2,grpc=2,stream=0.25",
        help="calls per second by kind, KIND=RATE comma-separated (kinds: rest, grpc, stream; stream = new "
        "LiftStreams per second; a kind not named keeps its default, 0 turns it off); the defaults ask about a "
        "quarter of the default model's capacity on 2 cores",
    )
    soak.add_argument("--seed", type=int, default=0, help="seed of the random schedule, requests and aborts")
    soak.add_argument("--settle-s", type=float, default=10.0, help="after the load, how long the server's open "
                      "files may take to return to the baseline")  # fmt: skip
    soak.add_argument("--serve-flags", default="", help="extra flags of `motionlift serve`")
    soak.set_defaults(bench_run=_bench_soak)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _bench_model(args: argparse.Namespace) -> int:
    """Print the peak lines, the table and the notes (service/bench/model.py), write --out if given; exit 0,
    or 2 with a message on stderr for a bad config, precision, window, batch or GEMM shape (checked before
    anything is timed)."""
    import torch

    from service.backends.torchscript.heap import keep_freed_memory
    from service.bench.model import run
    from service.bench.model_report import render_report, write_csv
    from service.bench.peak import parse_shapes

    keep_freed_memory()  # as `serve` does, so the figures are the served model's (service/backends/torchscript/heap.py)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    try:
        report = run(
            [c for c in args.configs.split(",") if c],
            _ints(args.windows),
            _ints(args.batches),
            precisions=[p for p in args.precisions.split(",") if p],
            seconds=args.seconds,
            official=args.official,
            shapes=parse_shapes(args.peak_shapes),
            max_call_seconds=args.max_call_seconds,
        )
    except ValueError as exc:
        print(f"motionlift bench model: {exc}", file=sys.stderr)
        return 2
    print(render_report(report))
    if args.out is not None:
        write_csv(report, args.out)
    return 0


def _bench_precision(args: argparse.Namespace) -> int:
    import torch

    from service.bench.precision import measure_errors
    from service.bench.table import render

    torch.set_num_threads(args.threads or torch.get_num_threads())
    precisions = [p for p in args.precisions.split(",") if p]
    try:
        rows = measure_errors(args.config, precisions, _ints(args.windows), checkpoint=args.checkpoint)
    except (FileNotFoundError, ValueError) as exc:
        print(f"motionlift bench precision: {exc}", file=sys.stderr)
        return 2
    header = ["config", "precision", "window", "max abs error", "output max", "error / max", "seconds"]
    table = [[r.config, r.precision, r.window, f"{r.max_abs:.2e}", f"{r.scale:.3f}", f"{r.max_abs / r.scale:.2e}",
              f"{r.seconds:.2f}"] for r in rows]  # fmt: skip
    print(f"max abs error against fp32, golden inputs (2 sequences per window), weights: {args.checkpoint or 'seed 0'}")
    print(render(header, table))
    return 0


def _bench_load(args: argparse.Namespace) -> int:
    from service.backends.torchscript.heap import keep_freed_memory
    from service.backends.torchscript.threads import wait_passively
    from service.bench.sweep import run

    keep_freed_memory()  # the raw model is timed in this process: with the served process's heap settings
    wait_passively()  # ... and its OpenMP wait policy

    setups = {"batched": args.serve_flags.split(), "unbatched": [*args.serve_flags.split(), "--max-batch-size", "1"]}
    print(
        run(
            args.model,
            frames=args.frames,
            concurrency=_ints(args.concurrency),
            seconds=args.seconds,
            flip=args.flip,
            setups=setups,
            raw_batches=_ints(args.raw_batches),
            protocols=args.protocols.split(","),
        )
    )
    return 0


def _bench_triton(args: argparse.Namespace) -> int:
    from service.bench.triton import run

    print(
        run(
            args.model_dir,
            triton_url=args.triton_url,
            frames=args.frames,
            concurrency=_ints(args.concurrency),
            seconds=args.seconds,
            flip=args.flip,
            serve_flags=args.serve_flags.split(),
        )
    )
    return 0


def _bench_soak(args: argparse.Namespace) -> int:
    """Print the soak report (service/bench/soak.py); exit 0 when its verdict passes, 1 when it fails or the
    server did not start or died (the reason on stderr), 2 for a bad ``--rate``, ``--minutes`` or ``--every``."""
    from service.bench.soak import parse_rates, run

    try:
        rates = parse_rates(args.rate)
        if not (args.minutes > 0 and args.every > 0):
            raise ValueError("--minutes and --every must be > 0")
    except ValueError as exc:
        print(f"motionlift bench soak: {exc}", file=sys.stderr)
        return 2
    try:
        text, passed = run(
            args.model, minutes=args.minutes, every=args.every, rates=rates, seed=args.seed,
            serve_flags=args.serve_flags.split(), settle_s=args.settle_s,
        )  # fmt: skip
    except RuntimeError as exc:  # the server did not start or died: the soak has no verdict
        print(f"motionlift bench soak: {exc}", file=sys.stderr)
        return 1
    print(text)
    return 0 if passed else 1
