"""A generic micro-batcher: one bounded queue, futures, and one background task.

Items from every caller wait in per-key groups (here the key is the window length: DSTformer has no
attention mask, so windows of different lengths must never be padded into one batch). A batch leaves
when its group is full (``max_batch_size`` items or ``max_batch_cost`` cost units, e.g. frames) or its
oldest item has waited ``max_delay_s`` -- and only when fewer than ``max_running`` batches are in flight
(1 for an in-process model; more for a remote one with several instances, so its round trips overlap), so
while the model is busy the next batch keeps filling (as Triton's dynamic batcher does). A batch that can no
longer grow (full, or the queue is at its bound so nothing more can join) may leave ``max_ahead`` batches early,
to wait where the model runs: the model then starts it the moment the running one ends, instead of idling while a
busy event loop hands it over (at 10x overload the model idled 5-7% of the time that way). Its items count as
queued until the batch before it ends: ``max_queued`` bounds what waits, wherever it waits. The batcher knows nothing of
tensors, HTTP or gRPC; each batch runs in a ``batch`` span of the tracer (``service.core.trace``), the child of its
first traced caller's span and linked to the others'.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from service.core.trace import NO_SPAN, OFF, Span, Tracer
from service.errors import BackendError, DeadlineExceeded, LiftError, Overloaded, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Done(Generic[R]):
    """One item's result and how it got there (seconds, from the batcher's clock)."""

    value: R
    queued_s: float
    compute_s: float
    batch_size: int
    batch_id: int


@dataclass
class _Entry(Generic[T, R]):
    item: T
    future: asyncio.Future[Done[R]]
    enqueued: float
    deadline: float | None
    cost: int = field(default=1)
    trace: object | None = None  # the caller's span handle (Tracer.current()), or None


class Batcher(Generic[T, R]):
    """Collects items from many callers into batches for ``run``.

    ``run(items)`` must return one result per item, in order. At most ``max_running`` calls run at once.
    ``on_batch(items, cost, seconds)`` is called after every successful batch (e.g. for metrics).
    Exceptions from ``run`` reach every caller of that batch (non-``LiftError`` ones as ``BackendError``).
    """

    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        key: Callable[[T], Hashable],
        cost: Callable[[T], int],
        max_batch_size: int,
        max_batch_cost: int,
        max_delay_s: float,
        max_queued: int,
        clock: Callable[[], float] = time.monotonic,
        on_batch: Callable[[int, int, float], None] | None = None,
        max_running: int = 1,
        tracer: Tracer = OFF,
    ) -> None:
        self._run = run
        self._key = key
        self._cost = cost
        self.max_batch_size = max_batch_size
        self.max_batch_cost = max_batch_cost
        self.max_delay_s = max_delay_s
        self.max_queued = max_queued
        self._clock = clock
        self._on_batch = on_batch  # (items, cost, seconds) of every batch that ran
        self._groups: dict[Hashable, deque[_Entry[T, R]]] = {}
        self._queued = 0
        self._ahead: deque[tuple[asyncio.Task[None], int]] = deque()  # batches sent ahead, not yet started; items
        self._waiting_ahead = 0  # their items
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.max_running = max_running  # batches in flight at once: 1 for an in-process model
        self.max_ahead = 0  # batches that cannot grow, sent beyond max_running to wait at the model
        self._running: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._last_batch_s = 0.0
        self._last_end = 0.0  # when the last batch ended (clock): a batch sent ahead starts no earlier
        self._tracer = tracer

    @property
    def queued(self) -> int:
        """Items waiting: in the queue (including ones whose callers gave up and that are not yet pruned) and in
        batches sent ahead that have not started."""
        return self._queued + self._waiting_ahead

    async def start(self) -> None:
        """Start the background task. Idempotent."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="batcher")

    async def close(self) -> None:
        """Stop: queued items fail with ``Unavailable``; the running batch is allowed to finish."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for running in list(self._running):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await running
        for group in self._groups.values():
            for entry in group:
                if not entry.future.done():
                    entry.future.set_exception(Unavailable("the service is shutting down"))
        self._groups.clear()
        self._queued = 0

    def submit(
        self, items: Sequence[T], *, deadline: float | None = None, trace: object | None = None
    ) -> list[asyncio.Future[Done[R]]]:
        """Queue all ``items`` or none of them.

        ``deadline`` is on this batcher's clock; ``trace`` the caller's span (``Tracer.current()``) for the spans
        of the batches that carry them. Raises ``Overloaded`` (with a retry hint) when the queue
        cannot take them all, and ``Unavailable`` when the batcher is not running.
        """
        if self._task is None:
            raise Unavailable("the model is not serving")
        if self.queued + len(items) > self.max_queued:
            raise self.overloaded()
        loop = asyncio.get_running_loop()
        now = self._clock()
        futures: list[asyncio.Future[Done[R]]] = []
        for item in items:
            entry: _Entry[T, R] = _Entry(item, loop.create_future(), now, deadline, self._cost(item), trace)
            self._groups.setdefault(self._key(item), deque()).append(entry)
            futures.append(entry.future)
        self._queued += len(items)
        self._wake.set()
        return futures

    def overloaded(self) -> Overloaded:
        """The error for items the queue cannot take now, with a retry hint."""
        return Overloaded(
            f"the queue is full ({self.queued} of {self.max_queued} windows waiting); retry later",
            retry_after_s=self._retry_after_s(),
        )

    def _retry_after_s(self) -> float:
        # Time to drain the queue at the last batch's pace: a hint, never less than a second.
        batches = self.queued / max(1, self.max_batch_size)
        return max(1.0, batches * self._last_batch_s)

    def _oldest_group(self) -> deque[_Entry[T, R]] | None:
        best: deque[_Entry[T, R]] | None = None
        for group in self._groups.values():
            if group and (best is None or group[0].enqueued < best[0].enqueued):
                best = group
        return best

    def _prune(self, now: float) -> None:
        """Drop items whose caller gave up; fail those whose deadline has passed (never computed)."""
        for key in list(self._groups):
            group = self._groups[key]
            kept = deque(e for e in group if not self._expire(e, now))
            self._queued -= len(group) - len(kept)
            if kept:
                self._groups[key] = kept
            else:
                del self._groups[key]

    @staticmethod
    def _expire(entry: _Entry[T, R], now: float) -> bool:
        if entry.future.done():
            return True
        if entry.deadline is not None and now >= entry.deadline:
            entry.future.set_exception(DeadlineExceeded("the deadline passed while the request was queued"))
            return True
        return False

    def _full(self, group: deque[_Entry[T, R]]) -> bool:
        if len(group) >= self.max_batch_size:
            return True
        return sum(e.cost for e in group) >= self.max_batch_cost

    def _take(self, group: deque[_Entry[T, R]]) -> list[_Entry[T, R]]:
        batch: list[_Entry[T, R]] = []
        cost = 0
        while group and len(batch) < self.max_batch_size:
            if batch and cost + group[0].cost > self.max_batch_cost:
                break
            entry = group.popleft()
            batch.append(entry)
            cost += entry.cost
        self._queued -= len(batch)
        return batch

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            self._prune(now)
            group = self._oldest_group()
            running = len(self._running)
            timeout: float | None = None
            if group is not None and running < self.max_running:
                due = group[0].enqueued + self.max_delay_s
                if self._full(group) or now >= due:
                    self._send(self._take(group), ahead=False)
                    continue
                timeout = due - now
            elif (
                group is not None
                and running < self.max_running + self.max_ahead
                and (self._full(group) or self.queued >= self.max_queued)  # it cannot grow by waiting
            ):
                self._send(self._take(group), ahead=True)
                continue
            if timeout is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)

    def _send(self, batch: list[_Entry[T, R]], *, ahead: bool) -> None:
        task = asyncio.create_task(self._execute(batch, ahead=ahead))
        self._running.add(task)
        task.add_done_callback(self._finished)
        if ahead:
            self._ahead.append((task, len(batch)))
            self._waiting_ahead += len(batch)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        # A batch ended: the oldest sent ahead starts now (or this was it, ended without starting: failed).
        for i, (waiting, items) in enumerate(self._ahead):
            if waiting is task:
                del self._ahead[i]
                self._waiting_ahead -= items
                break
        else:
            if self._ahead:
                self._waiting_ahead -= self._ahead.popleft()[1]
        self._wake.set()

    async def _execute(self, batch: list[_Entry[T, R]], *, ahead: bool = False) -> None:
        batch_id = next(self._ids)
        start = self._clock()
        try:
            with self._span(batch) as span:
                if self._tracer.on:
                    span.set("motionlift.batch.id", batch_id)
                    span.set("motionlift.batch.size", len(batch))
                    span.set("motionlift.batch.frames", sum(e.cost for e in batch))
                results = await self._run([e.item for e in batch])
            if len(results) != len(batch):
                raise BackendError(f"the backend returned {len(results)} results for {len(batch)} items")
        except Exception as exc:
            self._last_end = self._clock()  # a failed batch ends too: one sent ahead behind it starts now
            error = exc if isinstance(exc, LiftError) else BackendError(f"batch failed: {type(exc).__name__}")
            if error is not exc:
                log.exception("batch %d failed", batch_id)
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(error)
            return
        end = self._clock()
        if ahead:  # it waited at the model for the batch before it: that wait was queueing, not compute
            start = min(end, max(start, self._last_end))
        self._last_end = end
        self._last_batch_s = end - start
        if self._on_batch is not None:
            self._on_batch(len(batch), sum(e.cost for e in batch), end - start)
        for entry, value in zip(batch, results, strict=True):
            if not entry.future.done():
                entry.future.set_result(Done(value, start - entry.enqueued, end - start, len(batch), batch_id))

    def _span(self, batch: list[_Entry[T, R]]) -> contextlib.AbstractContextManager[Span]:
        """The batch's span: the child of its first traced caller, linked to the other callers; no span (and none
        below it) when no caller is traced."""
        if not self._tracer.on:
            return NO_SPAN
        callers = list({id(e.trace): e.trace for e in batch if e.trace is not None}.values())
        return self._tracer.span("batch", parent=callers[0] if callers else None, links=callers[1:])
