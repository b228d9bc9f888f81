"""Client side of ``LiftStream``: a sync iterator over answers, and an asyncio stream to send frames on and
read answers from (they interleave freely: the service answers a frame when its window is done).

A frame is ``{track_id: keypoints [J, C]}`` (one video frame, any number of tracks) or one pose ``[J, C]``
(track ``"0"``). Answers come in frame order per track; in look-ahead mode a frame's answer comes once its
later frames arrived, and ``done_writing()`` makes the service answer every track's remaining frames. A
failed stream raises the service's typed error (``service.errors``) from wherever the caller is waiting.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import Any

import grpc

from service.client import wire
from service.client.errors import from_grpc
from service.client.transports import rpc_error
from service.client.types import FrameResult, StreamStarted
from service.errors import LiftError


class FrameStream:
    """A sync ``LiftStream`` call fed from an iterable of frames; iterate it for ``FrameResult``s.

    The frames are read by grpc's own thread as it sends them. A frame the client cannot encode ends the
    sending (the service then answers what it has) and is raised once the answers are read.
    """

    def __init__(
        self, stub: Any, config: Any, frames: Iterable[Any], *, timeout_s: float | None, metadata: Any
    ) -> None:
        self._error: Exception | None = None
        self._call = stub.LiftStream(self._requests(config, frames), timeout=timeout_s, metadata=metadata)
        try:
            self.started: StreamStarted = wire.stream_started(next(self._call))
        except grpc.RpcError as exc:
            raise self._failure(exc) from None

    def _requests(self, config: Any, frames: Iterable[Any]) -> Iterator[Any]:
        yield config
        try:
            for frame in frames:
                yield wire.stream_frame(frame)
        except Exception as exc:  # raised again in the caller's thread by __iter__
            self._error = exc

    def _failure(self, exc: grpc.RpcError) -> Exception:
        return self._error if self._error is not None else rpc_error(exc)

    def __iter__(self) -> Iterator[FrameResult]:
        try:
            for response in self._call:
                yield wire.frame_result(response, time.perf_counter())
        except grpc.RpcError as exc:
            raise self._failure(exc) from None
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        """End the call at once (answers not yet read are lost)."""
        self._call.cancel()


class AsyncFrameStream:
    """An asyncio ``LiftStream`` call: ``async with`` opens it (``started`` is then set), ``send()`` frames,
    ``async for`` the answers, ``done_writing()`` when the video ends. Leaving the block cancels the call
    if it is still running.
    """

    def __init__(self, stub: Any, config: Any, *, timeout_s: float | None, metadata: Any) -> None:
        self._stub, self._config = stub, config
        self._timeout_s, self._metadata = timeout_s, metadata
        self._call: Any = None
        self.started: StreamStarted | None = None

    async def open(self) -> StreamStarted:
        """Send the config and wait for ``StreamStarted``; raises the service's error if it refuses it."""
        self._call = self._stub.LiftStream(timeout=self._timeout_s, metadata=self._metadata)
        try:
            await self._call.write(self._config)
            self.started = wire.stream_started(await self._call.read())
        except grpc.RpcError as exc:
            raise rpc_error(exc) from None
        return self.started

    async def __aenter__(self) -> AsyncFrameStream:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._call is not None and not self._call.done():
            self._call.cancel()

    def _live(self) -> Any:
        if self._call is None:
            raise RuntimeError("open the stream first (async with client.stream(...) as stream)")
        return self._call

    async def send(self, frame: Any, *, frame_index: int | None = None, timestamp_s: float | None = None) -> None:
        """Send one video frame. ``InvalidInput`` for a frame that is not ``[J, C]`` numbers per track;
        the service's error if the stream has failed."""
        request = wire.stream_frame(frame, frame_index=frame_index, timestamp_s=timestamp_s)
        try:
            await self._live().write(request)
        except grpc.RpcError as exc:
            raise rpc_error(exc) from None
        except Exception as exc:  # grpc.aio refuses writes on a finished call with a plain error
            raise await self._ended(exc) from None

    async def _ended(self, exc: Exception) -> LiftError:
        call = self._live()
        if call.done() and await call.code() != grpc.StatusCode.OK:
            return from_grpc((await call.code()).name, await call.details(), await call.trailing_metadata())
        return LiftError(f"the stream is closed: {exc}")

    async def done_writing(self) -> None:
        """No more frames: the service answers the remaining ones, then ends the stream."""
        try:
            await self._live().done_writing()
        except grpc.RpcError as exc:
            raise rpc_error(exc) from None

    async def __aiter__(self) -> AsyncIterator[FrameResult]:
        call = self._live()
        while True:
            try:
                response = await call.read()
            except grpc.RpcError as exc:
                raise rpc_error(exc) from None
            if response is grpc.aio.EOF:
                return
            yield wire.frame_result(response, time.perf_counter())
