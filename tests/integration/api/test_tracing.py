"""Tracing through the real service (uvicorn + gRPC on the tiny model) with the SDK's in-memory exporter: the span
tree of one REST request and of one gRPC call, their attributes, the caller's W3C traceparent continued (header
or metadata), a refused call's status, and a stream's span with its windows'."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.api.pb.motionlift.v1 import lift_pb2_grpc
from service.api.server import make_backend
from service.config import Settings
from service.core.lifter import Lifter
from tests.data import walk
from tests.rpc import SIZE, keypoints, rpc_error
from tests.servers import serve_app, until
from tests.spans import CALLER_SPAN, CALLER_TRACE, TRACEPARENT, Memory, hex_ids, is_child, memory_tracer

FRAMES = 40  # one window (the tiny model's is longer) and its flipped copy: one batch of 2


@pytest.fixture(scope="module")
def traced(tiny_model: Path) -> Iterator[tuple[str, str, Memory]]:
    """The service with tracing on: (REST URL, gRPC target, its spans)."""
    memory = memory_tracer()
    settings = Settings(model=tiny_model, grpc_port=0, max_queue_delay_ms=0)
    lifter = Lifter(make_backend(settings), settings, tracer=memory.tracer)
    with serve_app(settings, lifter) as (url, app):
        yield url, f"127.0.0.1:{app.state.grpc.port}", memory


@pytest.fixture
def memory(traced: tuple[str, str, Memory]) -> Memory:
    traced[2].clear()
    return traced[2]


def check_core_tree(memory: Memory, request: Any, request_id: str, protocol: str) -> None:
    """Below the edge's span: lift > prepare, queue > batch > backend, answer, with the request's figures."""
    lift = memory.one("lift")
    prepare, queue, answer = memory.one("prepare"), memory.one("queue"), memory.one("answer")
    batch, backend = memory.one("batch"), memory.one("backend")
    assert is_child(lift, request)
    assert all(is_child(span, lift) for span in (prepare, queue, answer))
    assert is_child(batch, queue) and is_child(backend, batch)
    attributes = dict(lift.attributes or {})
    assert {k: attributes[k] for k in ("motionlift.request_id", "motionlift.protocol", "motionlift.frames")} == {
        "motionlift.request_id": request_id,
        "motionlift.protocol": protocol,
        "motionlift.frames": FRAMES,
    }
    assert (attributes["motionlift.outcome"], attributes["motionlift.windows"]) == ("ok", 2)
    inference_ms = attributes["motionlift.latency.inference_ms"]
    assert attributes["motionlift.batch_size"] == 2 and isinstance(inference_ms, float) and inference_ms > 0
    batched = dict(batch.attributes or {})
    assert (batched["motionlift.batch.size"], batched["motionlift.batch.frames"]) == (2, 2 * FRAMES)
    assert dict(backend.attributes or {}) == {
        "motionlift.backend": "torchscript",
        "motionlift.device": "cpu",
        "motionlift.batch.size": 2,
    }


def test_a_rest_request_is_one_tree_continuing_the_callers_trace(
    traced: tuple[str, str, Memory], memory: Memory
) -> None:
    body = {"keypoints": walk(FRAMES), "format": "coco", "image_size": [1920, 1080]}
    headers = {"traceparent": TRACEPARENT, "x-request-id": "rest-trace-1"}
    answer = httpx.post(f"{traced[0]}/lift", json=body, headers=headers, timeout=60)
    assert answer.status_code == 200
    until(lambda: len(memory.named("POST /lift")) == 1, "the request's span to end")
    request = memory.one("POST /lift")
    assert request.kind.name == "SERVER" and request.parent is not None
    assert (hex_ids(request)[0], format(request.parent.span_id, "016x")) == (CALLER_TRACE, CALLER_SPAN)
    assert dict(request.attributes or {}) == {
        "motionlift.request_id": "rest-trace-1",
        "http.request.method": "POST",
        "url.path": "/lift",
        "http.response.status_code": 200,
    }
    check_core_tree(memory, request, "rest-trace-1", "rest")
    assert {s.name for s in memory.spans()} == {"POST /lift", "lift", "prepare", "queue", "batch", "backend", "answer"}


def test_probes_are_not_traced_and_a_refusal_keeps_its_status(traced: tuple[str, str, Memory], memory: Memory) -> None:
    assert httpx.get(f"{traced[0]}/readyz").status_code == 200
    refused = httpx.post(f"{traced[0]}/lift", json={"keypoints": [[[0, 0]]]}, timeout=60)
    assert refused.status_code == 422
    until(lambda: len(memory.named("POST /lift")) == 1, "the refused request's span to end")
    request = memory.one("POST /lift")
    assert request.parent is None  # no traceparent: a trace of its own
    assert (request.attributes or {})["http.response.status_code"] == 422
    assert request.status.status_code.name == "UNSET"  # the caller's mistake, not the service's fault
    assert {s.name for s in memory.spans()} == {"POST /lift"}


async def test_a_grpc_call_is_one_tree_continuing_the_callers_trace(
    traced: tuple[str, str, Memory], memory: Memory
) -> None:
    request = pb.LiftRequest(
        tracks=[pb.Track(keypoints=keypoints(walk(FRAMES)))], format=pb.FORMAT_COCO, image_size=SIZE
    )
    metadata = (("traceparent", TRACEPARENT), ("x-request-id", "grpc-trace-1"))
    async with grpc.aio.insecure_channel(traced[1]) as channel:
        stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
        answer = await stub.Lift(request, metadata=metadata, timeout=60)
        assert answer.request_id == "grpc-trace-1"
        error = await rpc_error(stub.Lift(pb.LiftRequest(), metadata=(("x-request-id", "grpc-bad"),), timeout=60))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    until(lambda: len(memory.named("motionlift.v1.Lifter/Lift")) == 2, "both calls' spans to end")
    call, bad = sorted(memory.named("motionlift.v1.Lifter/Lift"), key=lambda s: s.start_time or 0)
    assert call.kind.name == "SERVER" and call.parent is not None
    assert (hex_ids(call)[0], format(call.parent.span_id, "016x")) == (CALLER_TRACE, CALLER_SPAN)
    assert dict(call.attributes or {}) == {
        "motionlift.request_id": "grpc-trace-1",
        "rpc.system": "grpc",
        "rpc.service": "motionlift.v1.Lifter",
        "rpc.method": "Lift",
        "rpc.grpc.status_code": 0,
    }
    check_core_tree(memory, call, "grpc-trace-1", "grpc")
    # The empty request is refused by the edge (nothing to decode): its span says so, and has no children.
    assert (bad.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert bad.status.status_code.name == "UNSET" and bad.parent is None
    assert bad.context is not None and not [s for s in memory.spans() if is_child(s, bad)]


async def test_a_stream_is_one_span_with_its_windows(traced: tuple[str, str, Memory], memory: Memory) -> None:
    pose = np.asarray(walk(1)[0], np.float32).ravel()
    async with grpc.aio.insecure_channel(traced[1]) as channel:
        stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
        call = stub.LiftStream(metadata=(("traceparent", TRACEPARENT),), timeout=60)
        await call.write(pb.StreamRequest(config=pb.StreamConfig(format=pb.FORMAT_COCO, image_size=SIZE, window=4)))
        assert (await call.read()).WhichOneof("kind") == "started"
        for _ in range(3):
            track = pb.TrackFrame(track_id="a", joints=17, channels=3, keypoints=pose)
            await call.write(pb.StreamRequest(frame=pb.StreamFrame(tracks=[track])))
            assert (await call.read()).WhichOneof("kind") == "frame"
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
    until(lambda: len(memory.named("motionlift.v1.Lifter/LiftStream")) == 1, "the stream's span to end")
    stream = memory.one("motionlift.v1.Lifter/LiftStream")
    assert hex_ids(stream)[0] == CALLER_TRACE
    assert (stream.attributes or {})["rpc.grpc.status_code"] == 0
    windows = memory.named("window")
    assert len(windows) == 3 and all(is_child(w, stream) for w in windows)
    for window in windows:
        queue = next(q for q in memory.named("queue") if is_child(q, window))
        batch = next(b for b in memory.named("batch") if is_child(b, queue))
        assert any(is_child(b, batch) for b in memory.named("backend"))


async def test_streams_cut_by_their_deadline_end_their_spans_without_an_error_log(
    traced: tuple[str, str, Memory], memory: Memory, caplog: pytest.LogCaptureFixture
) -> None:
    # grpc may close a stream's handler from another task: its span still ends, and no context is restored there.
    pose = np.asarray(walk(1)[0], np.float32).ravel()

    async def requests() -> Any:
        yield pb.StreamRequest(config=pb.StreamConfig(format=pb.FORMAT_COCO, image_size=SIZE))
        for _ in range(40):
            track = pb.TrackFrame(track_id="a", joints=17, channels=3, keypoints=pose)
            yield pb.StreamRequest(frame=pb.StreamFrame(tracks=[track]))
            await asyncio.sleep(0.002)

    timeouts = (0.002, 0.01, 0.03, 0.06) * 3
    with caplog.at_level(logging.ERROR):
        async with grpc.aio.insecure_channel(traced[1]) as channel:
            stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
            for timeout in timeouts:
                call = stub.LiftStream(requests(), timeout=timeout)
                with pytest.raises(grpc.aio.AioRpcError):
                    async for _ in call:
                        pass
        # Every stream whose handler ran ends its span. (On a loaded machine grpc may let a 2 ms deadline pass
        # before the handler starts: such a call has no span at all, so the count is of spans started.)
        name = "motionlift.v1.Lifter/LiftStream"
        try:
            until(lambda: len(memory.named(name)) == memory.started(name) >= len(timeouts) // 2, "every stream's span")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {memory.started(name)} started, {len(memory.named(name))} ended") from None
    assert [r.getMessage() for r in caplog.records] == []
