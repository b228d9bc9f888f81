"""A real `motionlift serve` process under the clients that used to hold it up: a half-sent body, 100 open gRPC
streams, connections that never finish their headers. SIGTERM turns readiness and gRPC health (Check and Watch)
at once, refuses new work, and the process is gone within the drain timeout, whatever the clients do."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.api.pb.motionlift.v1 import lift_pb2_grpc
from service.bench.process import free_port, wait_ready
from tests.data import walk

pytestmark = pytest.mark.slow

DRAIN_S = 2.0
SIZE = pb.ImageSize(width=1920, height=1080)


@pytest.fixture
def server(tiny_model: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    rest, rpc = free_port(), free_port()
    command = [sys.executable, "-m", "service", "serve", "--model", str(tiny_model), "--port", str(rest)]
    command += ["--grpc-port", str(rpc), "--drain-timeout-s", str(DRAIN_S), "--read-timeout-s", "30"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(proc, f"http://127.0.0.1:{rest}/readyz", 60)
        yield proc, rest, rpc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _half_sent(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /lift HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{")
    return s


async def _open_streams(stub: Any, count: int) -> list[Any]:
    pose = np.asarray(walk(1)[0], np.float32).ravel()
    calls = []
    for _ in range(count):
        call = stub.LiftStream()  # no deadline: a live stream lasts as long as its video
        await call.write(pb.StreamRequest(config=pb.StreamConfig(format=pb.FORMAT_COCO, image_size=SIZE, window=4)))
        assert (await call.read()).WhichOneof("kind") == "started"
        track = pb.TrackFrame(track_id="a", joints=17, channels=3, keypoints=pose)
        await call.write(pb.StreamRequest(frame=pb.StreamFrame(tracks=[track])))
        calls.append(call)
    return calls


async def _health_changes(channel: grpc.aio.Channel) -> AsyncIterator[int]:
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
    async for change in watch:
        yield change.status


async def _drain(proc: subprocess.Popen[bytes], rest: int, rpc: int) -> dict[str, float]:
    sockets = [_half_sent(rest)] + [socket.create_connection(("127.0.0.1", rest)) for _ in range(3)]
    try:
        return await _drain_with(proc, rest, rpc, sockets)
    finally:  # closed even when the test fails, or the leaked sockets fail a later test with a ResourceWarning
        for s in sockets:
            s.close()


async def _drain_with(
    proc: subprocess.Popen[bytes], rest: int, rpc: int, sockets: list[socket.socket]
) -> dict[str, float]:
    sockets[1].sendall(b"POST /lift HTTP/1.1\r\nhost: x\r\n")  # half the headers
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rpc}") as channel:
        stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
        calls = await _open_streams(stub, 100)
        watch = _health_changes(channel)
        assert await anext(watch) == health_pb2.HealthCheckResponse.SERVING
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        assert await anext(watch) == health_pb2.HealthCheckResponse.NOT_SERVING
        turned = time.monotonic() - started
        # New work is refused: REST answers not ready until uvicorn closes its listening sockets (within 0.1 s of
        # the signal), then refuses connections (or closes one it had just accepted); gRPC refuses new calls while
        # the ones in flight get the drain.
        async with httpx.AsyncClient() as client:
            try:
                ready: int | None = (await client.get(f"http://127.0.0.1:{rest}/readyz")).status_code
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                # refused, or accepted in the instant the listener closed and then closed (or reset) with no
                # answer: either way no new work was taken (both seen under load, the reset in CI)
                ready = None
        request = pb.LiftRequest(tracks=[pb.Track(keypoints=_keypoints())], format=pb.FORMAT_COCO, image_size=SIZE)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Lift(request, timeout=5)
        await asyncio.to_thread(proc.wait, DRAIN_S + 5)
        gone = time.monotonic() - started
        codes = [await _ended(call) for call in calls]
    assert ready in (None, 503)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert set(codes) <= {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE}
    return {"turned": turned, "gone": gone}


async def _ended(call: Any) -> grpc.StatusCode:
    """The status a stream ended with, once the answers it had in flight are read (they hold back the status)."""
    with contextlib.suppress(grpc.aio.AioRpcError):
        while await asyncio.wait_for(call.read(), 10) is not grpc.aio.EOF:
            pass
    code: grpc.StatusCode = await asyncio.wait_for(call.code(), 10)
    return code


def _keypoints() -> pb.Keypoints:
    return pb.Keypoints(frames=2, joints=17, channels=3, values=np.asarray(walk(2), np.float32).ravel())


def test_sigterm_drains_within_the_timeout_whatever_the_clients_do(
    server: tuple[subprocess.Popen[bytes], int, int],
) -> None:
    proc, rest, rpc = server
    times = asyncio.run(_drain(proc, rest, rpc))
    assert proc.returncode is not None
    assert times["turned"] < 1.0  # health turns at the signal, not after the connections close
    assert times["gone"] < DRAIN_S + 5
