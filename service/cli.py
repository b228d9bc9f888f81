"""The ``motionlift`` command: the composition root. Settings are read here once and passed in."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.config import DEFAULT_MODEL, Settings

log = logging.getLogger("service")

# Flags of `serve`, each overriding the MOTIONLIFT_<NAME> environment variable of the same Settings field.
SERVE_FLAGS: dict[str, tuple[type, str]] = {
    "host": (str, "address to bind REST and gRPC"),
    "port": (int, "REST port (0 = any free port)"),
    "grpc_port": (int, "gRPC port (0 = any free port)"),
    "model": (Path, "TorchScript model file written by `motionlift export`"),
    "device": (str, "auto (GPU if torch sees one), cpu, cuda or cuda:N"),
    "precision": (str, "auto (as exported), fp32, bf16 or fp16"),
    "cuda_graphs": (str, "on/off: replay CUDA graphs for recurring batch shapes (CUDA only)"),
    "threads": (int, "intra-op threads of the model (0 = one per core)"),
    "log_level": (str, "debug, info, warning or error"),
    "max_frames": (int, "longest sequence per track, in frames"),
    "max_tracks": (int, "most tracks per request"),
    "max_body_bytes": (int, "largest request body in bytes"),
    "overlap": (int, "default overlap of consecutive windows, in frames"),
    "max_batch_size": (int, "most windows per model call"),
    "max_batch_frames": (int, "most frames (windows x length) per model call"),
    "max_queue_delay_ms": (float, "longest a window waits for its batch to fill"),
    "max_queued_windows": (int, "queue bound; beyond it requests are rejected at once"),
    "timeout_s": (float, "per-request deadline in seconds"),
    "backend": (str, "where the model runs: torchscript (in this process) or triton"),
    "triton_urls": (str, "Triton gRPC addresses host:port, comma-separated, used together"),
    "triton_model": (str, "model name on Triton"),
    "triton_version": (str, "model version on Triton (empty = latest)"),
}


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Environment first, then every flag that was given on the command line."""
    overrides = {name: getattr(args, name) for name in SERVE_FLAGS if getattr(args, name) is not None}
    return Settings(**overrides)


def _serve(args: argparse.Namespace) -> int:
    from service.backends.torchscript.heap import keep_freed_memory

    keep_freed_memory()  # before any thread starts (service/heap.py says why)
    settings = settings_from_args(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    problem = _preflight(settings)
    if problem:
        print(f"motionlift serve: {problem}", file=sys.stderr)
        return 2
    from service.api.server import run

    run(settings)
    return 0


def _preflight(settings: Settings) -> str | None:
    """Why the in-process model cannot start, in one line before the server starts rather than in a startup
    traceback; None when it can (and always for the Triton backend)."""
    if settings.backend != "torchscript":
        return None
    from service.backends.torchscript.backend import startup_problem

    return startup_problem(settings.model, settings.device)


def _export(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    from service.backends.torchscript.runner import torch_dtype
    from service.model.checkpoint import build_model
    from service.model.configs import resolve_config
    from service.model.export import export_torchscript, model_meta
    from service.model.trained import resolve_export_config

    try:
        # A trained model's description (e.g. service/model/weights/default.json) also gives its window.
        trained_spec = resolve_export_config(args.config)
        name, hparams, spec_window = trained_spec or (*resolve_config(args.config), None)
        model = build_model(hparams, checkpoint=args.checkpoint, seed=args.seed)
    except (FileNotFoundError, ValueError) as exc:
        print(f"motionlift export: {exc}", file=sys.stderr)
        return 2
    maxlen = int(hparams.get("maxlen", 243))
    window = args.window or spec_window or maxlen
    if not 1 <= window <= maxlen:
        print(f"motionlift export: --window must be in [1, {maxlen}], got {window}", file=sys.stderr)
        return 2
    trained = args.checkpoint is not None
    weights = Path(args.checkpoint).name if trained else f"random initialisation, seed {args.seed}"
    meta: dict[str, Any] = model_meta(
        name, hparams, model, window=window, trained=trained, weights=weights, card=args.card
    )
    meta["precision"] = args.precision
    model.to(torch_dtype(args.precision))  # the forward still takes and returns float32
    export_torchscript(model, args.out, meta)
    log.info(
        "wrote %s: %s, %d parameters, window %d, %s, weights: %s",
        args.out,
        name,
        meta["params"],
        window,
        args.precision,
        weights,
    )
    if not trained:
        log.warning("these are RANDOM weights: the model runs, but its 3D output is not a real pose")
    return 0


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _bench_model(args: argparse.Namespace) -> int:
    """Print the peak lines, the table and the notes (service/bench/model.py), write --out if given; exit 0,
    or 2 with a message on stderr for a bad config, precision, window, batch or GEMM shape (checked before
    anything is timed)."""
    import torch

    from service.backends.torchscript.heap import keep_freed_memory
    from service.bench.model import render_report, run, write_csv
    from service.bench.peak import parse_shapes

    keep_freed_memory()  # as `serve` does, so the figures are the served model's (service/heap.py)
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
    from service.bench.sweep import run

    keep_freed_memory()  # the raw model is timed in this process: with the served process's heap settings

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motionlift", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve REST (and gRPC) on the model file")
    for name, (kind, text) in SERVE_FLAGS.items():
        serve.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            default=None,
            help=f"{text} [env MOTIONLIFT_{name.upper()}]",
        )
    serve.set_defaults(func=_serve)

    export = sub.add_parser("export", help="write a DSTformer as TorchScript for serving")
    export.add_argument(
        "--config",
        default="small",
        help="full, lite, small, tiny, or a JSON file of DSTformer hyperparameters",
    )
    export.add_argument(
        "--checkpoint",
        default=None,
        help="official (model_pos) or MMPose (state_dict) checkpoint; none = seeded random weights",
    )
    export.add_argument("--seed", type=int, default=0, help="seed of the random weights (without --checkpoint)")
    export.add_argument("--window", type=int, default=None, help="frames per model window (default: maxlen)")
    export.add_argument("--card", default=None, help="model card of the weights, recorded in the metadata")
    export.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="dtype of the stored weights and of the computation (input and output stay float32)",
    )
    export.add_argument("--out", type=Path, default=DEFAULT_MODEL, help="where to write model.pt")
    export.set_defaults(func=_export)

    bench = sub.add_parser("bench", help="benchmarks (see `motionlift bench model -h`)")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
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
    model.set_defaults(func=_bench_model)
    precision = bench_sub.add_parser("precision", help="max abs error of bf16 / fp16 against fp32 on golden inputs")
    precision.add_argument("--config", default="tiny", help="full, lite, small, tiny or a JSON hyperparameter file")
    precision.add_argument("--checkpoint", default=None, help="weights (official / MMPose); none = seeded random")
    precision.add_argument("--precisions", default="bf16,fp16", help="comma-separated: bf16, fp16")
    precision.add_argument("--windows", default="27,243", help="golden input lengths: 1, 27, 81, 100, 243")
    precision.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = torch default)")
    precision.set_defaults(func=_bench_precision)
    load = bench_sub.add_parser("load", help="REST + gRPC load sweep: batched vs unbatched vs the raw backend, one run")
    load.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="TorchScript model file")
    load.add_argument("--frames", type=int, default=27, help="frames per sequence (<= the model window)")
    load.add_argument("--concurrency", default="1,8,64", help="comma-separated numbers of concurrent clients")
    load.add_argument("--seconds", type=float, default=10.0, help="duration of each point")
    load.add_argument("--flip", action="store_true", help="flip test-time augmentation (2 windows per request)")
    load.add_argument("--raw-batches", default="1,2,4,8", help="batch sizes of the raw backend measurement")
    load.add_argument("--protocols", default="rest,grpc", help="rest, grpc or both (comma-separated)")
    load.add_argument("--serve-flags", default="", help="extra flags of `motionlift serve` for both setups")
    load.set_defaults(func=_bench_load)
    triton = bench_sub.add_parser("triton", help="gateway -> Triton vs in-process vs direct Triton client, one run")
    triton.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL.parent.parent, help="<repo>/<model> folder")
    triton.add_argument("--triton-url", default=None, help="Triton gRPC host:port (default: start a local CPU one)")
    triton.add_argument("--frames", type=int, default=27, help="frames per sequence (<= the model window)")
    triton.add_argument("--concurrency", default="1,8,64", help="comma-separated numbers of concurrent clients")
    triton.add_argument("--seconds", type=float, default=10.0, help="duration of each point")
    triton.add_argument("--flip", action="store_true", help="flip test-time augmentation (2 windows per request)")
    triton.add_argument("--serve-flags", default="", help="extra flags of `motionlift serve` for the gateways")
    triton.set_defaults(func=_bench_triton)
    from service.bench.stream import add_command as add_bench_stream

    add_bench_stream(bench_sub)  # bench stream (service/bench/stream.py)

    from service.training.commands import add_commands

    add_commands(sub)  # train, evaluate (service/model/commands.py)
    from service.client.command import add_command as add_lift

    add_lift(sub)  # lift (service/client/command.py)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
