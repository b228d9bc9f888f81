"""The gRPC server's lifecycle and failure paths through real servers (uvicorn + gRPC) on a fake model that
tests hold open with events: health during shutdown, deadlines, overload, unexpected errors, size limit."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.api.pb.motionlift.v1 import lift_pb2_grpc
from service.api.server import build_app
from service.config import Settings
from service.core.lifter import Lifter
from tests.fakes import FakeBackend
from tests.rpc import keypoints, rpc_error, trailing
from tests.servers import serve_rest, until

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def request(frames: int) -> Any:
    poses = np.full((frames, 17, 3), 0.5, np.float32)
    return pb.LiftRequest(
        tracks=[pb.Track(keypoints=keypoints(poses))], format=pb.FORMAT_H36M, normalization=pb.NORMALIZATION_NONE
    )


@contextmanager
def service(**settings: Any) -> Iterator[tuple[str, FakeBackend, Lifter]]:
    """The whole app over a fake model, both servers on free ports; yields (gRPC target, backend, lifter)."""
    config = Settings(grpc_port=0, **settings)
    backend = FakeBackend()
    lifter = Lifter(backend, config)
    app = build_app(config, lifter)
    with serve_rest(app):
        yield f"127.0.0.1:{app.state.grpc.port}", backend, lifter


async def test_health_turns_not_serving_before_the_server_stops() -> None:
    config = Settings(grpc_port=0)
    app = build_app(config, Lifter(FakeBackend(), config))
    running = serve_rest(app)
    running.__enter__()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.state.grpc.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == SERVING
        stopping = asyncio.create_task(asyncio.to_thread(running.__exit__, None, None, None))  # SIGTERM-like
        assert (await watch.read()).status == NOT_SERVING  # sent by the server while it shuts down
        watch.cancel()  # a watcher that stays would hold shutdown for the grace period
        await stopping
    with grpc.insecure_channel(f"127.0.0.1:{app.state.grpc.port}") as sync, pytest.raises(grpc.RpcError):
        health_pb2_grpc.HealthStub(sync).Check(health_pb2.HealthCheckRequest(), timeout=2)  # and then it is gone


async def test_a_deadline_drops_the_queued_work() -> None:
    with service() as (target, backend, _):
        backend.hold = threading.Event()
        async with grpc.aio.insecure_channel(target) as channel:
            stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
            first = asyncio.ensure_future(stub.Lift(request(5), timeout=30))  # holds the model
            await asyncio.to_thread(backend.running.wait, 10)
            error = await rpc_error(stub.Lift(request(6), timeout=0.2))  # waits behind it, past its deadline
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            backend.hold.set()
            assert len((await first).tracks) == 1
            assert len((await stub.Lift(request(7), timeout=30)).tracks) == 1
        # The 6-frame windows were dropped, never computed: only the 5- and 7-frame batches ran.
        assert backend.batches == [(2, 5, 17, 3), (2, 7, 17, 3)]


async def test_a_full_queue_is_resource_exhausted_with_a_retry_hint() -> None:
    with service(max_queued_windows=2) as (target, backend, lifter):
        backend.hold = threading.Event()
        async with grpc.aio.insecure_channel(target) as channel:
            stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
            running = asyncio.ensure_future(stub.Lift(request(5), timeout=30))
            await asyncio.to_thread(backend.running.wait, 10)
            queued = asyncio.ensure_future(stub.Lift(request(5), timeout=30))  # fills the queue (2 windows)
            await asyncio.to_thread(until, lambda: lifter.batcher.queued == 2, "the second request queued")
            error = await rpc_error(stub.Lift(request(5), timeout=30))
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error.details().startswith("the queue is full")
            assert float(trailing(error)["retry-after-s"]) >= 1
            backend.hold.set()
            assert len((await running).tracks) == len((await queued).tracks) == 1


async def test_an_unexpected_error_is_internal_with_a_request_id(caplog: pytest.LogCaptureFixture) -> None:
    with service() as (target, _, lifter), caplog.at_level(logging.ERROR):

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug")

        lifter.lift = broken  # type: ignore[method-assign]
        async with grpc.aio.insecure_channel(target) as channel:
            stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
            error = await rpc_error(stub.Lift(request(3), metadata=(("x-request-id", "req-42"),), timeout=30))
    assert (error.code(), error.details()) == (grpc.StatusCode.INTERNAL, "internal error (request req-42)")
    assert trailing(error)["x-request-id"] == "req-42"
    assert "a bug" not in error.details()
    assert any("req-42" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_a_message_over_the_size_limit_is_refused() -> None:
    with service(max_body_bytes=4096) as (target, backend, _):
        async with grpc.aio.insecure_channel(target) as channel:
            stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
            error = await rpc_error(stub.Lift(request(25), timeout=30))  # 25 x 17 x 3 floats: 5.1 kB
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert len((await stub.Lift(request(10), timeout=30)).tracks) == 1
        assert backend.batches == [(2, 10, 17, 3)]
