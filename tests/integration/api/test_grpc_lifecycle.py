"""The gRPC server's lifecycle and failure paths through real servers (uvicorn + gRPC) on a fake model that
tests hold open with events: health during shutdown, deadlines, overload, unexpected errors, size limit, and
admission of unary ``Lift`` calls before their message is read (a reservation of queue room lasts until the message
arrives or the client leaves: ``service.core.admission``)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import threading
import types
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.api.pb.motionlift.v1 import lift_pb2_grpc
from service.api.server import build_app
from service.config import Settings
from service.core.lifter import Lifter
from service.errors import LiftError
from tests.fakes import FakeBackend
from tests.rpc import keypoints, rpc_error, trailing
from tests.servers import serve_app, serve_rest, until

LIFT = "/motionlift.v1.Lifter/Lift"
HOLD_S = 600.0  # a reservation outlives every test: only settling it can end it
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def request(frames: int) -> Any:
    poses = np.full((frames, 17, 3), 0.5, np.float32)
    return pb.LiftRequest(
        tracks=[pb.Track(keypoints=keypoints(poses))], format=pb.FORMAT_H36M, normalization=pb.NORMALIZATION_NONE
    )


@contextmanager
def service(**settings: Any) -> Iterator[tuple[str, FakeBackend, Lifter]]:
    """The whole app over a fake model, both servers on free ports; yields (gRPC target, backend, lifter)."""
    with served(**settings) as (_, target, backend, lifter):
        yield target, backend, lifter


@contextmanager
def served(**settings: Any) -> Iterator[tuple[str, str, FakeBackend, Lifter]]:
    """``service``, yielding the REST URL first; the door's reservations last ``HOLD_S``."""
    config = Settings(grpc_port=0, **settings)
    backend = FakeBackend()
    lifter = Lifter(backend, config)
    lifter.door.hold_s = HOLD_S
    app = build_app(config, lifter)
    with serve_rest(app) as url:
        yield url, f"127.0.0.1:{app.state.grpc.port}", backend, lifter


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


async def fill(stub: Any, backend: FakeBackend, lifter: Lifter) -> tuple[Any, Any]:
    """With ``max_queued_windows=2``: one call held in the model, one waiting (the queue is full); both calls."""
    backend.hold = threading.Event()
    running = asyncio.ensure_future(stub.Lift(request(5), timeout=30))
    await asyncio.to_thread(backend.running.wait, 10)
    queued = asyncio.ensure_future(stub.Lift(request(5), timeout=30))  # fills the queue (2 windows)
    await asyncio.to_thread(until, lambda: lifter.batcher.queued == 2, "the second request queued")
    return running, queued


async def test_a_full_queue_is_resource_exhausted_with_a_retry_hint() -> None:
    with service(max_queued_windows=2) as (target, backend, lifter):
        async with grpc.aio.insecure_channel(target) as channel:
            stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
            running, queued = await fill(stub, backend, lifter)
            error = await rpc_error(stub.Lift(request(5), timeout=30))
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error.details().startswith("the queue is full")
            assert float(trailing(error)["retry-after-s"]) >= 1
            backend.hold.set()  # type: ignore[union-attr]
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


def outcomes(url: str, protocol: str) -> dict[str, float]:
    """``motionlift_requests_total`` of ``protocol`` by outcome, from the service's /metrics."""
    counts: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("motionlift_requests_total{") and f'protocol="{protocol}"' in line:
            counts[line.split('outcome="', 1)[1].split('"', 1)[0]] = float(line.split()[-1])
    return counts


async def never(opened: asyncio.Event) -> AsyncIterator[bytes]:
    """A client that opens its call and never sends its message (nor half-closes)."""
    opened.set()
    await asyncio.Event().wait()
    yield b""  # never reached; makes this an async generator


def raw_lift(channel: grpc.aio.Channel) -> Any:
    """``Lift`` as the wire carries it, without the generated stub's one-message shape: bytes in, bytes out."""
    return channel.stream_unary(LIFT, request_serializer=lambda b: b, response_deserializer=lambda b: b)


async def test_a_full_queue_refuses_a_call_whose_message_was_never_sent() -> None:
    with served(max_queued_windows=2) as (url, target, backend, lifter):
        async with grpc.aio.insecure_channel(target) as channel:
            stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
            running, queued = await fill(stub, backend, lifter)
            before = outcomes(url, "grpc").get("overloaded", 0)
            error = await rpc_error(raw_lift(channel)(never(asyncio.Event()), timeout=30))
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error.details().startswith("the queue is full (2 of 2 windows waiting)")
            assert trailing(error)["motionlift-code"] == "overloaded"
            assert outcomes(url, "grpc").get("overloaded", 0) == before + 1
            backend.hold.set()  # type: ignore[union-attr]
            assert len((await running).tracks) == len((await queued).tracks) == 1
    assert lifter.door.held == 0


async def test_a_call_that_ends_without_its_message_is_invalid_argument_and_frees_its_room() -> None:
    with served() as (url, target, _, lifter):
        async with grpc.aio.insecure_channel(target) as channel:
            error = await rpc_error(raw_lift(channel)(iter(()), timeout=30))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert error.details() == "request: the call ended without a LiftRequest message"
            assert trailing(error)["motionlift-field"] == "request"
            assert lifter.door.held == 0
            assert outcomes(url, "grpc") == {"invalid_input": 1.0}
            stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
            assert len((await stub.Lift(request(5), timeout=30)).tracks) == 1  # the door is open for the next


async def test_a_client_that_leaves_before_its_message_is_counted_cancelled_and_frees_its_room() -> None:
    with served() as (url, target, _, lifter):
        async with grpc.aio.insecure_channel(target) as channel:
            opened = asyncio.Event()
            call = raw_lift(channel)(never(opened), timeout=30)
            await opened.wait()
            await asyncio.to_thread(until, lambda: lifter.door.held == 1, "the door to admit the call")
            call.cancel()
            await asyncio.to_thread(until, lambda: lifter.door.held == 0, "the reservation to end")
            await asyncio.to_thread(until, lambda: outcomes(url, "grpc") == {"cancelled": 1.0}, "the call counted")


async def test_refused_calls_leave_no_reference_cycles_for_the_garbage_collector() -> None:
    # At 10x overload a cycle per refusal (grpcio keeps context.abort's exception in the call's state) made the
    # collector 6% of the gateway, in pauses up to 20 ms; refusals must be freed by reference counting.
    with served(max_queued_windows=2, refusal_delay_ms=0) as (_, target, backend, lifter):
        async with grpc.aio.insecure_channel(target) as channel:
            stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
            running, queued = await fill(stub, backend, lifter)
            codes = [(await rpc_error(stub.Lift(request(5), timeout=30))).code() for _ in range(5)]  # warm
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                codes += [(await rpc_error(stub.Lift(request(5), timeout=30))).code() for _ in range(20)]
                gc.collect()
                ours = [
                    o
                    for o in gc.garbage
                    if isinstance(o, LiftError | grpc.aio.AbortError)
                    or (isinstance(o, types.FrameType) and "/service/" in o.f_code.co_filename)
                ]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
            assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 25
            assert ours == []
            backend.hold.set()  # type: ignore[union-attr]
            assert len((await running).tracks) == len((await queued).tracks) == 1


def test_a_rest_client_that_leaves_mid_body_frees_its_room() -> None:
    settings = Settings()
    lifter = Lifter(FakeBackend(), settings)
    lifter.door.hold_s = HOLD_S
    with serve_app(settings, lifter) as (url, _):  # with the door of `motionlift serve` (its HTTP protocol)
        body = json.dumps({"keypoints": np.full((27, 17, 3), 0.5).tolist(), "format": "coco"}).encode()
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as s:
            head = f"POST /lift HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
            s.sendall(head.encode() + b"\r\n\r\n" + body[: len(body) // 2])
            until(lambda: lifter.door.held == 1, "the door to admit the request")
        until(lambda: lifter.door.held == 0, "the reservation to end")
        until(lambda: outcomes(url, "rest").get("cancelled") == 1.0, "the request counted")
