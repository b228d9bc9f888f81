"""Runs a loaded model on one device in one precision: device choice, dtype, host staging, CUDA graphs.

The in-process backend calls ``Runner.__call__`` from its single worker thread. On CPU a batch goes from numpy
to the model without a copy (``torch.from_numpy``). On CUDA:

- input and output go through **pinned** (page-locked) host buffers, reused across calls and grown on demand,
  so host<->device copies are asynchronous DMA (``non_blocking=True``) instead of a staged pageable copy;
- the weights may be **fp16 or bf16** (``precision``); the model's forward casts its float32 input to the
  weights' dtype and its output back to float32, so nothing outside this module sees the compute dtype;
- optional **CUDA graphs**: a window shape ``(B, T)`` seen ``graph_after`` times is captured once and
  replayed from then on, which removes the per-kernel launch cost (hundreds of small kernels per window).
  Shapes vary with the batcher, so at most ``max_graphs`` shapes keep a graph (least recently used go).

Everything that needs a GPU is in the small ``_Cuda*`` helpers; the policy around them (which shape gets a
graph, buffer reuse, device and precision checks) is plain Python and is unit-tested on CPU with fakes.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from service.core.backend import Array
from service.model.precision import torch_dtype

log = logging.getLogger(__name__)


def select_device(requested: str) -> str:
    """Resolve ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` to a concrete device string.

    ``auto`` is ``cuda:0`` when torch sees a GPU, else ``cpu``. Raises ``ValueError`` with the reason when
    CUDA is asked for and this torch build or machine has none, when the index is out of range, or when the
    name is not a device this service runs on.
    """
    import torch

    name = requested.strip().lower()
    if name == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    index = _cuda_index(name)
    if index is None:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {requested!r}")
    if not torch.cuda.is_available():
        build = "a CPU-only torch build" if torch.version.cuda is None else "no visible GPU"
        raise ValueError(f"device {requested!r} asked for, but there is {build}; use --device cpu or auto")
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"device {requested!r} asked for, but only {count} GPU(s) are visible")
    return f"cuda:{index}"


def _cuda_index(name: str) -> int | None:
    """0 for ``cuda``, N for ``cuda:N``, None for anything else."""
    if name == "cuda":
        return 0
    digits = name.removeprefix("cuda:")
    return int(digits) if name.startswith("cuda:") and digits.isdigit() else None


def native_precision(precision: str, device: str) -> str | None:
    """``None`` when ``device`` computes ``precision`` in hardware; otherwise why it will be slow or fail.

    CPU: fp32 always; bf16 needs AVX512-BF16 or AMX (oneDNN's check), fp16 AVX512-FP16 or AMX-FP16. Without
    them torch falls back to slower code (measured here, AVX2 only: bf16 GEMM 21 GFLOP/s against 142 for
    fp32). CUDA: fp16 always; bf16 needs compute capability 8.0 (Ampere) or newer.
    """
    import torch

    if precision == "fp32":
        return None
    if device.startswith("cuda"):
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            return "this GPU has no bf16 arithmetic (needs compute capability >= 8.0)"
        return None
    if _cpu_has(precision):
        return None
    extension = {"bf16": "AVX512-BF16 or AMX-BF16", "fp16": "AVX512-FP16 or AMX-FP16"}[precision]
    return f"this CPU has no {extension}: {precision} runs without hardware support, several times slower than fp32"


def _cpu_has(precision: str) -> bool:
    """oneDNN's own check for native bf16 / fp16 arithmetic on this CPU (False if torch lacks the probe)."""
    import torch

    probe = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}[precision]
    check = getattr(torch.ops.mkldnn, probe, None)
    return check is not None and bool(check())


class GraphCache:
    """Which window shapes run as captured CUDA graphs: a shape gets one on its ``after``-th call (earlier
    calls run eagerly, which also warms up the allocator), and at most ``capacity`` shapes keep one, least
    recently used dropped first.

    ``capture(shape)`` returns a replay function for that shape (``x -> y``); ``eager(x)`` runs the model
    normally. Both are injected, so the policy runs on CPU in tests. Not thread-safe: one worker thread.
    """

    def __init__(
        self,
        capture: Callable[[tuple[int, ...]], Callable[[Any], Any]],
        eager: Callable[[Any], Any],
        *,
        after: int = 3,
        capacity: int = 8,
    ) -> None:
        if after < 1 or capacity < 1:
            raise ValueError(f"after and capacity must be >= 1, got {after} and {capacity}")
        self._capture = capture
        self._eager = eager
        self._after = after
        self._capacity = capacity
        self._seen: dict[tuple[int, ...], int] = {}
        self._graphs: OrderedDict[tuple[int, ...], Callable[[Any], Any]] = OrderedDict()

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Shapes that have a graph, least recently used first."""
        return list(self._graphs)

    def __call__(self, x: Any) -> Any:
        shape = tuple(int(s) for s in x.shape)
        replay = self._graphs.get(shape)
        if replay is not None:
            self._graphs.move_to_end(shape)
            return replay(x)
        seen = self._seen.get(shape, 0) + 1
        self._seen[shape] = seen
        if seen < self._after:
            return self._eager(x)
        if len(self._graphs) >= self._capacity:
            dropped, _ = self._graphs.popitem(last=False)
            self._seen[dropped] = 0  # earns a graph again by being used `after` times
        replay = self._capture(shape)
        self._graphs[shape] = replay
        return replay(x)


class PinnedBuffer:
    """A reusable page-locked host buffer for float32 arrays, grown when a larger batch comes.

    ``allocate(n)`` makes the storage (``torch.empty(n, pin_memory=True)`` on CUDA); it is injected so the
    reuse logic is testable on CPU. ``view(shape)`` returns a tensor over the first ``prod(shape)`` elements.
    """

    def __init__(self, allocate: Callable[[int], Any]) -> None:
        self._allocate = allocate
        self._storage: Any = None
        self.allocations = 0

    def view(self, shape: tuple[int, ...]) -> Any:
        size = int(np.prod(shape))
        if self._storage is None or self._storage.numel() < size:
            self._storage = self._allocate(max(size, 2 * (0 if self._storage is None else self._storage.numel())))
            self.allocations += 1
        return self._storage[:size].view(shape)


class Runner:
    """``runner(batch)`` -> the model's float32 output for a ``[B, T, J, C]`` float32 batch, on ``device``.

    The model is moved to ``device`` and cast to ``precision`` here. ``staged`` (default: on CUDA) sends
    batches through the reusable host buffers; on CPU they are ordinary memory, which lets tests run the staged
    path. ``cuda_graphs`` is ignored off CUDA. Raises ``ValueError`` at construction for an unknown precision or
    device (see ``select_device``). Errors from the model propagate unchanged. One thread at a time.
    """

    def __init__(
        self,
        model: Any,
        *,
        device: str,
        precision: str,
        cuda_graphs: bool = False,
        graph_after: int = 3,
        max_graphs: int = 8,
        staged: bool | None = None,
    ) -> None:
        import torch

        self.device = select_device(device)
        self.precision = precision
        self._torch = torch
        self._dtype = torch_dtype(precision)
        self._model = model.to(device=self.device, dtype=self._dtype)
        self._from: Callable[[Any, int], Any] | None = getattr(self._model, "forward_from", None)
        cuda = self.device.startswith("cuda")
        self._staged = cuda if staged is None else staged
        self._sync: Callable[[], None] = torch.cuda.current_stream(self.device).synchronize if cuda else _nothing

        def allocate(n: int) -> Any:
            return torch.empty(n, dtype=torch.float32, pin_memory=cuda)

        self._host_in = PinnedBuffer(allocate)
        self._host_out = PinnedBuffer(allocate)
        self._graphs: GraphCache | None = None
        if cuda and cuda_graphs:
            self._graphs = GraphCache(self._capture, self._model, after=graph_after, capacity=max_graphs)

    @property
    def graph_shapes(self) -> list[tuple[int, ...]]:
        return [] if self._graphs is None else self._graphs.shapes

    @property
    def host_allocations(self) -> int:
        """How many times the staging buffers were (re)allocated: stays flat once batches stop growing."""
        return self._host_in.allocations + self._host_out.allocations

    def __call__(self, batch: Array, first: int = 0) -> Array:
        """The output rows ``first..T-1`` of every window (``[B, T - first, J, C]``): through the model's
        ``forward_from`` (``dstformer.py``), which skips work for the other rows, or, for a file exported before
        it had one, the full output sliced. CUDA graphs replay full windows only."""
        torch = self._torch
        with torch.inference_mode():
            # The cast in and out is also the model's own (dstformer.py); doing it here too serves files exported
            # before the model had it, and costs nothing in fp32 (``.to`` of the same dtype is a no-op).
            if not self._staged:
                out: Array = self._forward(torch.from_numpy(batch).to(self._dtype), first).float().numpy()
                return out
            host = self._host_in.view(batch.shape)
            host.numpy()[...] = batch
            x = host.to(self.device, non_blocking=True).to(self._dtype)  # DMA from page-locked memory
            y = (self._graphs(x) if self._graphs is not None and first == 0 else self._forward(x, first)).float()
            result = self._host_out.view(tuple(y.shape))
            result.copy_(y, non_blocking=True)
            self._sync()  # after this both copies are done, so the buffers may be reused by the next call
            copied: Array = result.numpy().copy()
            return copied

    def _forward(self, x: Any, first: int) -> Any:
        if first == 0:
            return self._model(x)
        if self._from is None:
            return self._model(x)[:, first:]
        return self._from(x, first)

    def _capture(self, shape: tuple[int, ...]) -> Callable[[Any], Any]:
        """Capture the model for one input shape (CUDA only); returns ``x -> y`` replaying the graph."""
        torch = self._torch
        static_x = torch.zeros(shape, device=self.device, dtype=self._dtype)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # capture needs warm-up calls off the default stream
            for _ in range(2):
                self._model(static_x)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_y = self._model(static_x)
        log.info("captured a CUDA graph for input shape %s", shape)

        def replay(x: Any) -> Any:
            static_x.copy_(x)
            graph.replay()
            return static_y  # overwritten by the next replay; the caller copies it out first

        return replay


def _nothing() -> None:
    return None
