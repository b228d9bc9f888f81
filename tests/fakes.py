"""A fake backend implementing the Backend Protocol, for batcher/lifter unit tests and failure paths."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping

import numpy as np

from service.core.backend import Array, ModelInfo


class FakeBackend:
    """Returns ``x * 2`` of the input; records batch shapes and trace headers; can be made to fail, or held: with
    ``gate`` (an asyncio.Event, same loop) or ``hold`` (a threading.Event, for servers running in another thread)."""

    def __init__(self, *, window: int = 27, fail: BaseException | None = None) -> None:
        self.window = window
        self.fail = fail
        self.gate: asyncio.Event | None = None
        self.hold: threading.Event | None = None
        self.running = threading.Event()
        self.batches: list[tuple[int, ...]] = []
        self.headers: list[Mapping[str, str] | None] = []  # the trace context each batch was given
        self.firsts: list[int] = []  # the first row each batch asked for (Backend.infer)
        self.started = asyncio.Event()
        self.slots_ahead = 0  # batches it takes beyond slots (Backend.ahead)
        self.slots = 1  # its concurrency: a test may change it while it runs, as servers of a remote one come and go
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def concurrency(self) -> int:
        return self.slots

    @property
    def ahead(self) -> int:
        return self.slots_ahead

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            name="fake",
            config="fake",
            params=0,
            window=self.window,
            trained=False,
            weights="none",
            precision="fp32",
            device="cpu",
        )

    async def start(self) -> None:
        self._ready = True

    async def infer(self, batch: Array, *, first: int = 0, headers: Mapping[str, str] | None = None) -> Array:
        self.batches.append(batch.shape)
        self.firsts.append(first)
        self.headers.append(headers)
        self.started.set()
        self.running.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.hold is not None:
            await asyncio.to_thread(self.hold.wait, 60)  # bounded: a failed test must not hang the run at exit
        if self.fail is not None:
            raise self.fail
        out: Array = (batch[:, first:] * 2).astype(np.float32)
        return out

    async def close(self) -> None:
        self._ready = False
