"""``motionlift bench onnx``: ONNX Runtime (CPU execution provider) against TorchScript on the same model file,
the same batch and the same threads, in this process: ms per batch, the speed-up and the largest difference in
output. Issue 14 asked for ONNX Runtime as a second runner if it is at least 1.3 x faster at equal output
(<= 1e-5); README "Model speed" has the figures that decided against it. Needs ``onnx`` and ``onnxruntime``
(not dependencies of the project: ``pip install onnx onnxruntime``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from service.backends.torchscript.cpus import default_threads, usable
from service.bench.table import render

SPEED_UP_TO_ADOPT = 1.3


def _timed(call: Any, seconds: float) -> float:
    """Seconds per call, after three warm-up calls (TorchScript specialises on its first calls of a shape)."""
    for _ in range(3):
        call()
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        call()
        calls += 1
    return (time.perf_counter() - t0) / calls


def compare(model: Path, *, window: int, batch: int, threads: int, seconds: float) -> list[Any]:
    """One row: TorchScript ms, ONNX Runtime ms, speed-up, max |difference| for a ``[batch, window, 17, 3]`` input."""
    import onnxruntime as ort
    import torch

    from service.model.export import load_torchscript
    from service.model.onnx import export_onnx
    from service.model.repository import INPUT

    torch.set_num_threads(threads)
    module, _ = load_torchscript(model)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(batch, window, 17, 3)).astype(np.float32))
    with torch.inference_mode():
        expected = module(x).numpy()
        scripted = _timed(lambda: module(x), seconds)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(module, path, frames=window)  # the model package's export (opset 17, dynamic axes)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {INPUT: x.numpy()}
    got = session.run(None, feed)[0]
    onnx_s = _timed(lambda: session.run(None, feed), seconds)
    return [batch, threads, 1000 * scripted, 1000 * onnx_s, scripted / onnx_s, float(np.abs(got - expected).max())]


def add_command(bench_sub: Any) -> None:
    """Add ``onnx`` to the ``motionlift bench`` subparsers."""
    from service.config import DEFAULT_MODEL

    bench = bench_sub.add_parser("onnx", help="ONNX Runtime vs TorchScript on the same model (needs onnxruntime)")
    bench.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="TorchScript model file")
    bench.add_argument("--window", type=int, default=27, help="frames per window")
    bench.add_argument("--batches", default="1,16", help="comma-separated batch sizes")
    bench.add_argument("--threads", default="1,2", help="comma-separated intra-op thread counts")
    bench.add_argument("--seconds", type=float, default=3.0, help="timing per point")
    bench.set_defaults(bench_run=_command)


def _command(args: Any) -> int:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("motionlift bench onnx: needs onnx and onnxruntime (pip install 'motionlift[onnx]')")
        return 2
    rows = [
        compare(args.model, window=args.window, batch=int(b), threads=int(t), seconds=args.seconds)
        for t in args.threads.split(",") for b in args.batches.split(",")
    ]  # fmt: skip
    shown = [[b, t, f"{ts:.1f}", f"{ox:.1f}", f"{up:.2f}", f"{diff:.1e}"] for b, t, ts, ox, up, diff in rows]
    print(render(["batch", "threads", "TorchScript ms", "ONNX Runtime ms", "speed-up", "max |diff|"], shown))
    served = default_threads(usable())
    mine = [r for r in rows if r[1] == served] or rows
    worst = min(r[4] for r in mine)
    verdict = "adopt" if worst >= SPEED_UP_TO_ADOPT and max(r[5] for r in mine) <= 1e-5 else "keep TorchScript"
    print(f"at the service's {served} thread(s), the smallest speed-up over the batch sizes is {worst:.2f} x "
          f"(adopt at >= {SPEED_UP_TO_ADOPT} x everywhere, output within 1e-5): {verdict}")  # fmt: skip
    return 0
