"""In-process backend: the exported TorchScript file on CPU or CUDA, in model processes this service owns.

"In-process" means no server between the gateway and the model (as Triton is); the model itself runs in
``instances`` child processes (``instance.py`` says why a process and not a thread), each with ``threads``
intra-op threads. A batch goes to an instance with a free slot: each takes ``AHEAD`` batches beyond the one it
runs, which wait in its pipe (``ahead``); an instance that dies is restarted in the background while the others
serve, and the service is not ready while none is alive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from service.backends.torchscript import cpus
from service.backends.torchscript.instance import Instance, Loaded, Spec
from service.core.backend import Array, ModelInfo
from service.errors import Unavailable

log = logging.getLogger(__name__)

AHEAD = 1  # batches waiting in an instance's pipe behind the one it runs: enough that it never waits for the loop
RESTART_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # between attempts to bring a dead instance back; the last repeats


def startup_problem(path: Path, device: str) -> str | None:
    """Why ``path`` cannot be served on ``device``, found without loading the model: a missing file, or a device
    that is unknown or absent (``select_device``). None when neither. ``motionlift serve`` says it in one line
    before starting the server; ``TorchScriptBackend.start`` raises the model process's reason as ``Unavailable``.
    Imports torch only for an explicit CUDA device: ``auto`` and ``cpu`` always resolve, and the gateway process
    that calls this does not otherwise need torch (the model runs in its own processes)."""
    if not path.is_file():
        return f"model file {path} does not exist; run `bash .ci/setup` or `motionlift export`"
    if device.strip().lower() in ("auto", "cpu"):
        return None
    from service.backends.torchscript.runner import select_device

    try:
        select_device(device)
    except ValueError as exc:
        return str(exc)
    return None


class TorchScriptBackend:
    """Serves ``model.pt`` written by ``motionlift export``; no Python model class is needed to serve it.

    ``device`` is ``auto`` / ``cpu`` / ``cuda[:N]``, ``precision`` ``auto`` (as exported) / ``fp32`` / ``bf16`` /
    ``fp16``, ``cuda_graphs`` replays captured graphs on CUDA (``runner.py``). ``instances`` model processes run
    one batch each at a time, with ``threads`` intra-op threads each (0 = ``cpus.py``'s default: all usable CPUs
    but one). ``placement`` (``cpus.py``): the CPUs each instance keeps to; ``None``: any. ``batch_windows`` and
    ``batch_frames``: the batcher's largest batch (``Spec``), which each instance runs once while warming up.
    ``start`` raises ``Unavailable`` naming the problem for a missing file, an unknown or absent device, or an
    unknown precision; a precision this hardware only emulates is served with a warning in the log.
    """

    def __init__(
        self,
        path: Path,
        *,
        device: str = "auto",
        threads: int = 0,
        instances: int = 1,
        precision: str = "auto",
        cuda_graphs: bool = False,
        placement: cpus.Placement | None = None,
        batch_windows: int = 1,
        batch_frames: int | None = None,
    ) -> None:
        if instances < 1:
            raise ValueError(f"instances must be >= 1, got {instances}")
        if placement is not None and len(placement.instances) != instances:
            raise ValueError(f"placement has CPUs for {len(placement.instances)} instances, not {instances}")
        threads = threads or cpus.default_threads(cpus.usable())
        self._spec = Spec(
            str(path),
            device=device,
            threads=threads,
            precision=precision,
            cuda_graphs=cuda_graphs,
            batch_windows=batch_windows,
            batch_frames=batch_frames,
        )
        self._owned = [()] * instances if placement is None else list(placement.instances)
        self._count = instances
        self._executor: ThreadPoolExecutor | None = None
        self._idle: asyncio.Queue[Instance] | None = None
        self._live: set[Instance] = set()
        self._restarts: set[asyncio.Task[None]] = set()
        self._info: ModelInfo | None = None
        self._closed = False

    @property
    def ready(self) -> bool:
        return bool(self._live) and not self._closed

    @property
    def concurrency(self) -> int:
        return self._count

    @property
    def ahead(self) -> int:
        return self._count * AHEAD

    @property
    def pids(self) -> list[int]:
        """The model processes alive now (tests and benchmarks look at them)."""
        return sorted(pid for instance in self._live if (pid := instance.pid) is not None)

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise Unavailable("the model is not loaded yet")
        return self._info

    async def start(self) -> None:
        # One thread per slot for start and run: each blocks on its pipe with the GIL released.
        self._executor = ThreadPoolExecutor(max_workers=self._count * (1 + AHEAD), thread_name_prefix="model")
        self._idle = asyncio.Queue()
        loop = asyncio.get_running_loop()
        instances = [Instance(replace(self._spec, cpus=owned)) for owned in self._owned]
        results = await asyncio.gather(
            *(loop.run_in_executor(self._executor, instance.start) for instance in instances), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await asyncio.gather(*(loop.run_in_executor(self._executor, i.close) for i in instances))
            raise failed[0]
        loaded = [r for r in results if isinstance(r, Loaded)]
        self._describe(loaded[0])
        for instance in instances:
            self._serve(instance)

    def _describe(self, loaded: Loaded) -> None:
        self._info = replace(ModelInfo.from_meta(loaded.meta, device=loaded.device), precision=loaded.precision)
        if loaded.slow:
            log.warning("serving in %s on %s although %s", loaded.precision, loaded.device, loaded.slow)
        log.info(
            "model warmed up in %.2f s on %s in %s, the largest batch (%d window(s)) included; one %d-frame window "
            "%.1f ms; %d instance(s) x %d intra-op threads",
            loaded.warm_s,
            loaded.device,
            loaded.precision,
            loaded.batch,
            self._info.window,
            loaded.window_ms,
            self._count,
            loaded.threads,
        )

    async def infer(self, batch: Array, *, first: int = 0, headers: Mapping[str, str] | None = None) -> Array:
        """``Backend.infer``; ``headers`` (trace context) are not used: the model runs in this service's processes.
        Rows before ``first`` are skipped in the model (``Runner``), not only sliced off."""
        if self._idle is None or self._executor is None or self._closed:
            raise Unavailable("the model is not loaded")
        while True:
            if not self._live:
                raise Unavailable("no model process is running; one is being restarted")
            instance = await self._idle.get()
            if instance in self._live:
                break  # else a slot of a dead instance, dropped
        running = asyncio.get_running_loop().run_in_executor(self._executor, instance.run, batch, first)
        try:
            out: Array = await asyncio.shield(running)
        except asyncio.CancelledError:
            # The caller left, but the batch still runs in its thread and its answer is still coming down the pipe:
            # the instance is free only once it has arrived, or the next batch would read this one's answer.
            running.add_done_callback(lambda done: self._release(instance, done))
            raise
        except Unavailable:
            self._lost(instance)
            raise
        except BaseException:
            self._idle.put_nowait(instance)  # BackendError: the model failed on this batch, the instance is fine
            raise
        self._idle.put_nowait(instance)
        return out

    def _release(self, instance: Instance, done: asyncio.Future[Array]) -> None:
        """An abandoned batch finished: its instance serves again, or is replaced if its process died."""
        if not done.cancelled() and isinstance(done.exception(), Unavailable):
            self._lost(instance)
        elif self._idle is not None and not self._closed:
            self._idle.put_nowait(instance)

    def _serve(self, instance: Instance) -> None:
        """A started instance serves: live, with all its slots free."""
        if self._idle is None:
            raise Unavailable("the backend is not started")
        self._live.add(instance)
        for _ in range(1 + AHEAD):
            self._idle.put_nowait(instance)

    def _lost(self, instance: Instance) -> None:
        """An instance whose process died (each of its batches in flight says so; the first is acted on)."""
        if instance not in self._live:
            return
        self._live.discard(instance)
        log.error("model process %s died; restarting it (%d of %d alive)", instance.pid, len(self._live), self._count)
        if not self._closed:
            task = asyncio.get_running_loop().create_task(self._restart(instance.spec.cpus), name="model-restart")
            self._restarts.add(task)
            task.add_done_callback(self._restarts.discard)

    async def _restart(self, owned: tuple[int, ...]) -> None:
        """A new instance in place of a dead one, on its CPUs (``owned``); retried with growing delays."""
        loop = asyncio.get_running_loop()
        for attempt in range(10**9):
            if self._closed or self._executor is None or self._idle is None:
                return
            instance = Instance(replace(self._spec, cpus=owned))
            try:
                await loop.run_in_executor(self._executor, instance.start)
            except Unavailable as exc:
                delay = RESTART_DELAYS_S[min(attempt, len(RESTART_DELAYS_S) - 1)]
                log.error("model process restart failed: %s; next attempt in %g s", exc, delay)
                await asyncio.sleep(delay)
                continue
            if self._closed:
                await loop.run_in_executor(self._executor, instance.close)
                return
            self._serve(instance)
            log.info("model process %s is back (%d of %d alive)", instance.pid, len(self._live), self._count)
            return

    async def close(self) -> None:
        self._closed = True
        for task in list(self._restarts):
            task.cancel()
        live, self._live = list(self._live), set()
        if self._executor is not None:
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(self._executor, i.close) for i in live))
            self._executor.shutdown(wait=True)
            self._executor = None
