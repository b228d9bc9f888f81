"""In-process backend: the exported TorchScript file on CPU or CUDA, run in one dedicated thread."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from service.backends.torchscript.runner import Runner, native_precision, select_device
from service.core.backend import Array, ModelInfo
from service.errors import BackendError, Unavailable

log = logging.getLogger(__name__)


def startup_problem(path: Path, device: str) -> str | None:
    """Why ``path`` cannot be served on ``device``, found without loading the model: a missing file, or a device
    that is unknown or absent (``select_device``). None when neither. ``motionlift serve`` says it in one line
    before starting the server; ``TorchScriptBackend.start`` raises it as ``Unavailable``. Imports torch."""
    if not path.is_file():
        return f"model file {path} does not exist; run `bash .ci/setup` or `motionlift export`"
    try:
        select_device(device)
    except ValueError as exc:
        return str(exc)
    return None


class TorchScriptBackend:
    """Loads ``model.pt`` written by ``motionlift export``; no Python model class is needed to serve it.

    All torch work runs in a single worker thread, so the event loop stays free and batches run one at a
    time. ``device`` is ``auto`` / ``cpu`` / ``cuda[:N]``, ``precision`` ``auto`` (as exported) / ``fp32`` /
    ``bf16`` / ``fp16``, ``cuda_graphs`` replays captured graphs on CUDA (``service/backends/runner.py``).
    ``start`` raises ``Unavailable`` naming the problem for a missing file, an unknown or absent device, or an
    unknown precision; a precision this hardware only emulates is served with a warning in the log.
    ``threads`` sets torch's intra-op threads (0 = one per core). Measured on 2 cores with the default
    model (243-frame requests, 4 clients): 2 threads served 0.92 x the raw model's best frames/s, 1 thread
    (leaving the event loop a core) 0.64 x; the loop's own work is small next to the model's.
    """

    def __init__(
        self,
        path: Path,
        *,
        device: str = "auto",
        threads: int = 0,
        precision: str = "auto",
        cuda_graphs: bool = False,
    ) -> None:
        self._path = path
        self._device = device
        self._threads = threads
        self._precision = precision  # "auto" = the precision the file was exported in
        self._cuda_graphs = cuda_graphs
        self._executor: ThreadPoolExecutor | None = None
        self._runner: Runner | None = None
        self._info: ModelInfo | None = None
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def concurrency(self) -> int:
        return 1  # one model, one worker thread: batches queue behind each other anyway

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise Unavailable("the model is not loaded yet")
        return self._info

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchscript")
        loop = asyncio.get_running_loop()
        problem = await loop.run_in_executor(self._executor, startup_problem, self._path, self._device)
        if problem:
            raise Unavailable(problem)
        await loop.run_in_executor(self._executor, self._load)
        self._ready = True

    def _load(self) -> None:
        import torch

        from service.model.export import load_torchscript

        cores = os.cpu_count() or 1
        torch.set_num_threads(self._threads or cores)
        try:
            device = select_device(self._device)  # checked by startup_problem; this resolves auto
            model, meta = load_torchscript(self._path, device="cpu")
            precision = str(meta.get("precision", "fp32")) if self._precision == "auto" else self._precision
            self._runner = Runner(model, device=device, precision=precision, cuda_graphs=self._cuda_graphs)
        except ValueError as exc:  # bad device / precision / file: the service cannot start on it
            raise Unavailable(str(exc)) from exc
        slow = native_precision(precision, device)
        if slow:
            log.warning("serving in %s on %s although %s", precision, device, slow)
        self._info = replace(ModelInfo.from_meta(meta, device=device), precision=precision)
        # Warm-up: TorchScript's profiling executor specialises on the first calls of each shape; run the
        # full window (the common case) a few times and a short one, so the first requests are not slow.
        window = np.zeros((1, self._info.window, 17, 3), np.float32)
        t0 = time.perf_counter()
        for _ in range(3):
            self._run(window)
        self._run(window[:, :1])
        t1 = time.perf_counter()
        self._run(window)
        per_window = time.perf_counter() - t1
        log.info(
            "model warmed up in %.2f s on %s in %s; one %d-frame window %.1f ms; %d intra-op threads",
            t1 - t0,
            device,
            precision,
            self._info.window,
            1000 * per_window,
            torch.get_num_threads(),
        )

    def _run(self, batch: Array) -> Array:
        assert self._runner is not None
        return self._runner(batch)

    async def infer(self, batch: Array) -> Array:
        if not self._ready or self._executor is None:
            raise Unavailable("the model is not loaded")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._run, batch)
        except Exception as exc:  # torch raises RuntimeError for anything from OOM to a bad shape
            log.exception("model failed on a batch of shape %s", batch.shape)
            raise BackendError(f"the model failed: {type(exc).__name__}") from exc

    async def close(self) -> None:
        self._ready = False
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._runner = None
