"""Reading ``POST /lift`` bodies without freezing the event loop, and without letting them pile up.

orjson holds the GIL for the whole parse (about 20 ms per MiB of keypoints), so a worker thread would still
stop the loop that serves REST and gRPC for the length of a large body. Bodies are parsed:

- up to ``INLINE_BYTES`` on the loop (a hop would cost more than the parse);
- up to ``PROCESS_BYTES`` in a worker thread (the GIL is held for at most ~20 ms);
- beyond, in one of ``workers`` worker processes (``forkserver``: safe beside the model's and gRPC's threads),
  which send back float32 arrays. One body per process at a time: a large body that finds every process busy is
  refused at once with 503, before it is read when its ``Content-Length`` says how large it is.

A large body whose size was declared is never held whole by the service process: ``parse_chunks`` writes its
chunks as they arrive into an anonymous in-memory file (``memfd_create``) that the worker process reads by its
``/proc`` path. Joining a 57 MiB body and pickling it to the worker held the GIL for 53 + 45 ms (measured on the
2-core CI machine), long enough to push a small request beside it past 100 ms. Where there is no ``memfd_create``
or the worker may not open the file, the body is joined and sent as before.

Memory: the parse's Python objects (about 30 bytes per number) live in the worker process and are gone with the
call; the service holds the body and the float32 arrays (4 bytes per number).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import AsyncIterable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Final, TypeVar

from service.api.rest import body as lift_body
from service.api.rest.body import LiftBody
from service.core.windows import Capacity
from service.errors import Overloaded, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

INLINE_BYTES: Final = lift_body.INLINE_BYTES
PROCESS_BYTES: Final = 1 << 20
WARM_BODY: Final = b'{"format": "h36m", "keypoints": [[[0, 0]]]}'


class BodyReader:
    """Parses bodies as the module says. Cheap to construct; ``start()`` starts and warms the worker processes,
    ``close()`` stops them. ``reserve`` (before reading) and ``parse`` raise ``Overloaded`` when every process is
    busy, and ``Unavailable`` when a worker process died (the pool is restarted for the next body)."""

    def __init__(self, workers: int, capacity: Callable[[], Capacity | None] = lambda: None) -> None:
        self.workers = workers
        self._capacity = capacity  # what the queue can ever hold: bodies over it are refused in the process
        self._pool: ProcessPoolExecutor | None = None
        self._busy = 0

    async def start(self) -> None:
        self._pool = self._new_pool()
        await asyncio.get_running_loop().run_in_executor(self._pool, lift_body.parse, WARM_BODY)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=start_reader, initargs=(os.getpid(),))

    @contextmanager
    def reserve(self, declared: int | None) -> Iterator[bool]:
        """Hold a worker process for a body whose declared size needs one (yields whether it holds one)."""
        if declared is None or declared <= PROCESS_BYTES:
            yield False
            return
        self._take()
        try:
            yield True
        finally:
            self._busy -= 1

    def _take(self) -> None:
        if self._busy >= self.workers:
            raise Overloaded(f"all {self.workers} body readers are busy with large bodies; retry", retry_after_s=1.0)
        self._busy += 1

    async def parse(self, content: bytes, *, reserved: bool) -> LiftBody:
        """``content`` parsed where its size says; ``reserved``: the caller holds a process (``reserve``). A body
        that could never be queued is refused where it is parsed (``body.parse_within``)."""
        return await self.read(lift_body.parse_within, content, self._capacity(), reserved=reserved)

    async def parse_chunks(self, chunks: AsyncIterable[bytes], *, reserved: bool) -> LiftBody:
        """``parse`` of the body ``chunks`` make up; a reserved (large, declared) body goes to the worker process
        through an in-memory file as it arrives (see the module). Errors as ``parse``, and whatever ``chunks``
        raise (the client leaving); the file is gone when this returns or raises."""
        if not (reserved and hasattr(os, "memfd_create")):
            return await self.parse(b"".join([chunk async for chunk in chunks]), reserved=reserved)
        fd = os.memfd_create("motionlift-body", os.MFD_CLOEXEC)
        try:
            async for chunk in chunks:
                _write_all(fd, chunk)
            try:
                return await self._in_process(parse_fd, os.getpid(), fd, self._capacity())
            except OSError as exc:  # the worker could not open the file (a hardened /proc): send the bytes
                log.warning("a body reader cannot open the body's file (%s); sending the body instead", exc)
                content = await asyncio.to_thread(_read_all, fd)
                return await self._in_process(lift_body.parse_within, content, self._capacity())
        finally:
            os.close(fd)

    async def read(self, fn: Callable[..., T], content: bytes, *args: object, reserved: bool = False) -> T:
        """``fn(content, *args)`` where ``content``'s size says (the module's rule: the loop, a thread, a process);
        ``fn`` and its arguments and result must pickle. A large body without a reservation takes a process now,
        or is refused with ``Overloaded``."""
        return await self.route(len(content), fn, content, *args, reserved=reserved)

    async def route(self, size: int, fn: Callable[..., T], *args: object, reserved: bool = False) -> T:
        """``fn(*args)`` where ``size`` (the bytes it reads or writes) says, by the module's rule: work that holds
        the GIL for long (parsing, formatting text) goes to a worker process, whose GIL is not the loop's."""
        if size <= INLINE_BYTES:
            return fn(*args)
        if size <= PROCESS_BYTES:
            return await asyncio.to_thread(fn, *args)
        if reserved:
            return await self._in_process(fn, *args)
        self._take()  # no reservation (a chunked body, an answer to format): a process now, or 503
        try:
            return await self._in_process(fn, *args)
        finally:
            self._busy -= 1

    async def _in_process(self, fn: Callable[..., T], *args: object) -> T:
        if self._pool is None:
            raise Unavailable("the service is not reading bodies (not started, or shutting down)")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except BrokenProcessPool:
            log.error("a body reader process died (out of memory?); restarting them")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            raise Unavailable("the body could not be read (a reader process died); retry") from None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int) -> bytes:
    return os.pread(fd, os.fstat(fd).st_size, 0)


def parse_fd(pid: int, fd: int, capacity: Capacity | None) -> LiftBody:
    """In a worker process: ``body.parse_within`` of the body in the service process ``pid``'s file ``fd``."""
    with open(f"/proc/{pid}/fd/{fd}", "rb") as file:
        content = file.read()
    return lift_body.parse_within(content, capacity)


def start_reader(pid: int, every_s: float = 1.0) -> None:
    """A reader process's start: lowest CPU priority, and exit when the service process ``pid`` is gone.

    Priority: on a machine with few cores a reader parsing a large body takes a whole core, and the model's
    threads, sharing what is left, slowed small requests 3-8x; at nice 19 the scheduler gives the model first
    claim and the reader the rest. Exit: a pool's worker holds both ends of its own call queue, so it never sees
    the end of a parent that was killed (SIGKILL, a crash) and would linger."""
    os.nice(19)

    def watch() -> None:
        while True:
            time.sleep(every_s)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
