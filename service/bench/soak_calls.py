"""The calls of the soak benchmark's load (``service/bench/soak_clients.py`` schedules them and aborts them):
what one call sends, drawn at random; a paced ``LiftStream``; and a REST client that disconnects on purpose.

A call's body returns its outcome (``"ok"``; ``"disconnected"`` when it went away before the answer; a typed
error's class name when the service answered with an error; ``"failed: ..."`` when there was no answer) or raises
the client's error, which the scheduler names.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from service.bench.stream import IMAGE_SIZE

FPS = 30.0
CLIENT_TIMEOUT_S = 60.0  # above the service's default deadline (30 s): a timeout here is a hang, not a 504
Action = Literal["normal", "cancel", "disconnect"]


@dataclass(frozen=True)
class Call:
    """One call's random draw: what to send and whether (``action``) and when (``at`` s) to abort it."""

    action: Action
    at: float
    frames: int
    tracks: int
    flip: bool
    invalid: bool
    half_body: bool  # REST disconnect: close after half the body instead of after all of it
    seconds: float  # streams: how long to send
    lookahead: int  # streams: 0 = causal


@dataclass
class Frames:
    """Frames (one track in one video frame) of the streams that ended normally: each must come back answered or
    counted in a later answer's ``skipped`` (the service answers every track's last frames when writing ends)."""

    sent: int = 0
    answered: int = 0
    skipped: int = 0

    @property
    def unaccounted(self) -> int:
        return self.sent - self.answered - self.skipped


def tracks_of(pose: Any, tracks: int) -> dict[str, Any]:
    """``tracks`` people side by side (100 px apart) moving alike: ``{"0": pose, "1": pose + 100 px, ...}``."""
    shift = np.asarray([100.0, 0.0, 0.0], np.float32)
    return {str(k): pose + k * shift for k in range(tracks)}


async def one_stream(client: Any, call: Call, motion: Any, window: int, frames: Frames) -> str:
    """A ``LiftStream`` of ``call.tracks`` tracks at 30 fps for ``call.seconds``, then ``done_writing`` and every
    answer read; adds its frames to ``frames`` once it ended normally. Cancelling it cancels the call."""
    mode = {"mode": "lookahead", "lookahead": call.lookahead, "hop": call.lookahead} if call.lookahead else {}
    count = max(1, int(call.seconds * FPS))
    timeout = call.seconds + CLIENT_TIMEOUT_S
    options = {"format": "coco", "image_size": IMAGE_SIZE, "window": window, "flip": call.flip, **mode}
    async with client.stream(timeout_s=timeout, **options) as s:
        reader = asyncio.create_task(_answers(s))
        try:
            start = time.monotonic()
            for i in range(count):  # on an absolute schedule, as a camera
                await asyncio.sleep(max(0.0, start + i / FPS - time.monotonic()))
                await s.send(tracks_of(motion[i % len(motion)], call.tracks), frame_index=i)
            await s.done_writing()
            answered, skipped = await reader
        finally:  # a failed send leaves the reader to collect, not to warn about later
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    frames.sent += count * call.tracks
    frames.answered += answered
    frames.skipped += skipped
    return "ok"


async def _answers(stream: Any) -> tuple[int, int]:
    answered = skipped = 0
    async for answer in stream:
        answered += 1
        skipped += answer.skipped
    return answered, skipped


async def rest_disconnect(url: str, call: Call, tracks: dict[str, Any]) -> str:
    """``POST /lift`` on a socket of its own that closes ``call.at`` s after sending the request (or only half
    its body, ``call.half_body``) unless the answer's status line came first."""
    from service.client import wire
    from service.client.errors import from_http
    from service.client.types import lift_call
    from service.core.options import LiftOptions

    options = LiftOptions.from_mapping({"format": "coco", "image_size": IMAGE_SIZE, "flip": call.flip})
    body = wire.rest_body(lift_call(tracks=tracks, options=options))
    host, _, port = url.removeprefix("http://").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = f"POST /lift HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
        writer.write(f"{head}\r\n\r\n".encode() + (body[: len(body) // 2] if call.half_body else body))
        await writer.drain()
        try:
            line = await asyncio.wait_for(reader.readline(), call.at)
        except TimeoutError:
            return "disconnected"  # the socket closes below, before any answer
        if not line:
            return "failed: the service closed the connection without an answer"
        status = int(line.split()[1])
        return "ok" if status == 200 else type(from_http(status, b"", {})).__name__
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
