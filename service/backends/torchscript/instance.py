"""One model instance: the TorchScript model in its own process, fed batches over a pipe.

Why a process and not a thread: a TorchScript forward holds the GIL for much of its run. Measured on this
project's 2-core machine (default model, batch 16, one intra-op thread): a Python counting loop in the same process
ran at 27% of its speed while the model ran in a thread beside it, and at full speed in another process. In the
server the loop is that counting thread: at 10x overload the model thread slept 1.9 s of every 10 waiting for the
GIL, and the loop waited on the model. A process has its own GIL; a batch crosses the pipe as one pickled array
(a 16-window batch is 88 KB each way: microseconds, beside a forward of about 100 ms).

The child loads the model with ``Runner`` (device, precision, CUDA graphs as before), warms it up, reports
``Loaded``, then answers batches until the pipe closes or it is told to stop. It ignores SIGINT and SIGTERM: a
signal sent to the whole process group (Ctrl+C, systemd) must not kill the model under requests the parent is
still draining; it exits when the parent closes the pipe, which happens also when the parent dies.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from service.core.backend import Array, ModelInfo
from service.core.inference import frame_budget
from service.errors import BackendError, Unavailable

log = logging.getLogger(__name__)

PRIMITIVE_CACHE = 32  # oneDNN primitives kept (``_load`` says why)
START_TIMEOUT_S = 300.0  # loading and warming up the full model on a slow CPU takes seconds, not minutes


@dataclass(frozen=True)
class Spec:
    """What an instance serves: the model file, ``device`` (auto/cpu/cuda[:N]), ``threads`` (intra-op, >= 1),
    ``precision`` (``auto`` = as exported), ``cuda_graphs``; ``cpus``: the CPUs the process keeps to (``cpus.py``,
    placement), empty = any; ``batch_windows`` and ``batch_frames``: the largest batch the batcher sends (its
    ``--max-batch-size`` and ``--max-batch-frames``, None = the model's frame budget), run once in the warm-up."""

    path: str
    device: str = "auto"
    threads: int = 1
    precision: str = "auto"
    cuda_graphs: bool = False
    cpus: tuple[int, ...] = ()
    batch_windows: int = 1
    batch_frames: int | None = None


def largest_batch(spec: Spec, info: ModelInfo) -> int:
    """Full windows in the largest batch the batcher can send to this model: ``batch_windows``, capped by the
    frame budget (a window over the budget runs alone)."""
    frames = spec.batch_frames or frame_budget(info)
    return max(1, min(spec.batch_windows, frames // max(1, info.window)))


@dataclass(frozen=True)
class Loaded:
    """What the child reports once warmed up: the file's metadata, the device and precision it resolved, the time
    of one full window after warm-up, its intra-op threads, its pid and the largest batch it warmed up with."""

    meta: dict[str, Any]
    device: str
    precision: str
    warm_s: float
    window_ms: float
    threads: int
    pid: int
    slow: str | None = None  # why this precision is only emulated on this hardware, if it is
    batch: int = 1  # windows in the largest batch, run once in the warm-up


class Instance:
    """The parent's handle on one model process. ``start`` (blocking: spawn, load, warm up) returns ``Loaded`` or
    raises ``Unavailable`` with the child's reason; ``run`` (blocking) returns the model's output, raises
    ``BackendError`` when the model failed on the batch (the instance stays usable) and ``Unavailable`` when the
    process is gone (the instance is dead: ``alive`` is False).

    ``run`` may be called from several threads at once: each batch is sent at once (it waits in the pipe while the
    child computes the one before) and answers are taken in the order the batches were sent."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._sending = threading.Lock()
        self._turn = threading.Condition()
        self._sent = 0  # batches sent; the n-th (from 0) takes the n-th answer
        self._answered = 0  # answers taken

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive() and self._conn is not None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> Loaded:
        context = multiprocessing.get_context("spawn")  # no fork: the parent has gRPC's and the loop's threads
        parent, child = context.Pipe(duplex=True)
        process = context.Process(target=_child_main, args=(child, self.spec), name="motionlift-model", daemon=True)
        process.start()
        child.close()
        self._conn, self._process = parent, process
        if not parent.poll(START_TIMEOUT_S):
            self.close()
            raise Unavailable(f"the model process did not load {self.spec.path} within {START_TIMEOUT_S:g} s")
        try:
            kind, payload = parent.recv()
        except (EOFError, OSError):
            code = self._reap()
            raise Unavailable(f"the model process exited while loading (exit code {code})") from None
        if kind != "loaded":
            self.close()
            raise Unavailable(str(payload))
        loaded: Loaded = payload
        return loaded

    def run(self, batch: Array, first: int = 0) -> Array:
        """The model's output rows ``first..`` for ``batch`` (``Runner``), computed in the model process."""
        with self._sending:
            conn = self._conn
            if conn is None:
                raise Unavailable("the model process is not running")
            ticket = self._sent
            self._sent += 1
            unsent: BaseException | None = None
            try:
                conn.send((batch, first))
            except BaseException as exc:  # its turn is still taken below, or the batches after it would wait forever
                unsent = exc
        with self._turn:
            self._turn.wait_for(lambda: self._answered == ticket)
        try:
            if unsent is not None and not isinstance(unsent, OSError):
                raise unsent
            if unsent is not None or self._conn is not conn:  # a broken pipe, or an answer before found it gone
                raise OSError("the model process is gone")
            kind, payload = conn.recv()
        except (EOFError, OSError):
            code = self._reap()
            raise Unavailable(f"the model process exited (exit code {code}); it is being restarted") from None
        finally:
            with self._turn:
                self._answered += 1
                self._turn.notify_all()
        if kind == "error":
            raise BackendError(f"the model failed: {payload}")
        out: Array = payload
        return out

    def close(self, timeout_s: float = 5.0) -> None:
        """Ask the child to stop and wait ``timeout_s`` for it; kill it after that. Idempotent."""
        with self._sending:  # never while a batch is being written
            conn, process = self._conn, self._process
            self._conn = None
            if conn is not None:
                with contextlib.suppress(OSError):  # already gone
                    conn.send(None)
                conn.close()
        if process is not None:
            process.join(timeout_s)
            if process.is_alive():
                process.kill()
                process.join(timeout_s)

    def _reap(self) -> int | None:
        """The exit code of a child that is gone (or killed now); the handle is closed."""
        process = self._process
        with self._sending:  # a batch being written to the dead child fails first (broken pipe), then it closes
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        if process is None:
            return None
        process.join(1.0)
        if process.is_alive():
            process.kill()
            process.join(1.0)
        return process.exitcode


def _child_main(conn: Connection, spec: Spec) -> None:
    """The model process: set up, load, report, then answer batches until told to stop or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if spec.cpus:  # before torch starts its threads, which inherit it
        os.sched_setaffinity(0, spec.cpus)
    from service.backends.torchscript.heap import keep_freed_memory
    from service.backends.torchscript.threads import wait_passively

    keep_freed_memory()  # before torch starts threads (heap.py says why)
    wait_passively()  # before torch is imported (threads.py says why)
    try:
        runner, loaded = _load(spec)
    except Exception as exc:  # any reason not to serve goes to the parent as text, which says it in one line
        conn.send(("failed", _reason(exc)))
        return
    conn.send(("loaded", loaded))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent closed the pipe or died
            return
        if job is None:
            return
        try:
            batch, first = job
            conn.send(("ok", runner(batch, first)))
        except Exception as exc:  # torch raises RuntimeError for anything from OOM to a bad shape
            conn.send(("error", f"{type(exc).__name__}: {str(exc)[:300]}"))


def _reason(exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError | ValueError):
        return str(exc)
    return f"the model could not be loaded: {type(exc).__name__}: {str(exc)[:300]}"


def _load(spec: Spec) -> tuple[Any, Loaded]:
    # oneDNN caches compiled primitives per tensor shape (batch size x window length: hundreds in service), 1024 of
    # them by default, and the heap kept mapped (heap.py) keeps what they took: a model process fed random shapes
    # grew 232 MiB in a minute and kept growing; with 32 it levels off (+125 MiB), at the same speed for repeated
    # shapes. Read once, when torch first uses oneDNN, so before the import; a value the user set wins.
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(PRIMITIVE_CACHE))
    import torch

    from service.backends.torchscript.runner import Runner, native_precision, select_device
    from service.model.export import load_torchscript

    torch.set_num_threads(spec.threads)
    if not os.path.isfile(spec.path):
        raise FileNotFoundError(f"model file {spec.path} does not exist; run `bash .ci/setup` or `motionlift export`")
    device = select_device(spec.device)
    model, meta = load_torchscript(spec.path, device="cpu")
    precision = str(meta.get("precision", "fp32")) if spec.precision == "auto" else spec.precision
    runner = Runner(model, device=device, precision=precision, cuda_graphs=spec.cuda_graphs)
    # Warm-up: TorchScript's profiling executor specialises on the first calls of each shape; run the full window
    # (the common case) a few times and a short one, so the first requests are not slow.
    window = np.zeros((1, int(meta["window"]), 17, 3), np.float32)
    t0 = time.perf_counter()
    for _ in range(3):
        runner(window)
    runner(window[:, :1])
    # The largest batch, once: the heap, kept mapped (heap.py), reaches its high-water mark now rather than under
    # the first big request, which then pays no page faults, and the RSS at start is the RSS under load (a
    # 10-minute soak saw the model process grow 7% when its first 24-window batch came, in minute 6).
    most = largest_batch(spec, ModelInfo.from_meta(meta, device=device))
    if most > 1:
        runner(np.zeros((most, *window.shape[1:]), np.float32))
    t1 = time.perf_counter()
    runner(window)
    window_ms = 1000 * (time.perf_counter() - t1)
    loaded = Loaded(
        meta=meta,
        device=device,
        precision=precision,
        warm_s=t1 - t0,
        window_ms=window_ms,
        threads=torch.get_num_threads(),
        pid=os.getpid(),
        slow=native_precision(precision, device),
        batch=most,
    )
    return runner, loaded
