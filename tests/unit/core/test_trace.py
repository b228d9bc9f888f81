"""The core's spans over a fake model, with the SDK's in-memory exporter: one lift is one tree (lift > prepare,
queue > batch > backend, answer) with its attributes and the trace context handed to the backend; callers sharing
a batch are linked; a stream's trace is bounded; nothing is traced without a request span, or with tracing off."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from service.config import Settings
from service.core import stream_runner
from service.core.frames import TrackFrame
from service.core.lifter import Lifter
from service.core.options import LiftOptions
from service.core.stream_options import StreamOptions
from service.core.trace import NO_SPAN, OFF
from service.core.tracks import Track
from tests.fakes import FakeBackend
from tests.spans import CALLER_SPAN, CALLER_TRACE, TRACEPARENT, hex_ids, is_child, linked, memory_tracer

OPTIONS = LiftOptions(format="h36m", normalization="none", flip=False)


def track(frames: int = 27, name: str = "a") -> Track:
    kp = np.zeros((frames, 17, 3), np.float32)
    kp[..., :2] = np.random.default_rng(frames).uniform(-1, 1, size=(frames, 17, 2))
    kp[..., 2] = 1.0
    return Track(name, kp)


def test_off_hands_out_the_same_no_op_objects() -> None:
    assert OFF.on is False
    assert OFF.span("queue") is NO_SPAN and OFF.request("POST /lift", {"traceparent": TRACEPARENT}, "r") is NO_SPAN
    assert (OFF.current(), OFF.headers(), OFF.ids()) == (None, None, None)


async def test_one_lift_is_one_tree_under_the_callers_trace() -> None:
    memory = memory_tracer()
    backend = FakeBackend(window=27)
    lifter = Lifter(backend, Settings(max_queue_delay_ms=0), tracer=memory.tracer)
    await lifter.start()
    try:
        with memory.tracer.request("POST /lift", {"traceparent": TRACEPARENT}, "req-1"):
            result = await lifter.lift([track(50)], OPTIONS, request_id="req-1")
    finally:
        await lifter.close()
    request, lift = memory.one("POST /lift"), memory.one("lift")
    prepare, queue, answer = memory.one("prepare"), memory.one("queue"), memory.one("answer")
    batch, call = memory.one("batch"), memory.one("backend")
    assert request.context is not None and request.parent is not None
    assert (format(request.context.trace_id, "032x"), format(request.parent.span_id, "016x")) == (
        CALLER_TRACE,
        CALLER_SPAN,
    )
    assert is_child(lift, request)
    assert all(is_child(span, lift) for span in (prepare, queue, answer))
    assert is_child(batch, queue) and is_child(call, batch)
    assert call.kind.name == "CLIENT" and request.kind.name == "SERVER"
    # 50 frames: 3 windows of 27 (overlapping by at least 27 // 4), in one batch.
    assert dict(lift.attributes or {}) == {
        "motionlift.request_id": "req-1",
        "motionlift.protocol": "rest",
        "motionlift.tracks": 1,
        "motionlift.frames": 50,
        "motionlift.outcome": "ok",
        **{f"motionlift.latency.{s}_ms": round(v, 3) for s, v in result.timing.stages_ms().items()},
        "motionlift.batch_size": 3,
        "motionlift.batches": 1,
        "motionlift.windows": 3,
    }
    assert dict(batch.attributes or {}) == {
        "motionlift.batch.id": 1,
        "motionlift.batch.size": 3,
        "motionlift.batch.frames": 81,
    }
    assert dict(call.attributes or {}) == {
        "motionlift.backend": "torchscript",
        "motionlift.device": "cpu",
        "motionlift.batch.size": 3,
    }
    # The backend was handed the trace context of its own span, to forward.
    trace_id, span_id = hex_ids(call)
    assert backend.headers == [{"traceparent": f"00-{trace_id}-{span_id}-01"}]


async def test_callers_sharing_a_batch_are_linked_to_it() -> None:
    memory = memory_tracer()
    lifter = Lifter(FakeBackend(), Settings(max_queue_delay_ms=10_000, max_batch_size=2), tracer=memory.tracer)
    await lifter.start()

    async def one(request_id: str) -> None:
        with memory.tracer.request("POST /lift", {}, request_id):
            await lifter.lift([track(27, request_id)], OPTIONS, request_id=request_id)

    try:
        await asyncio.gather(one("first"), one("second"))  # one window each: the batch of 2 leaves when full
    finally:
        await lifter.close()
    queues = {}
    for lift in memory.named("lift"):
        queue = next(q for q in memory.named("queue") if is_child(q, lift))
        queues[str((lift.attributes or {})["motionlift.request_id"])] = queue
    batch = memory.one("batch")
    assert queues["first"].context is not None and queues["second"].context is not None
    assert is_child(batch, queues["first"])
    assert linked(batch) == [queues["second"].context.span_id]
    assert (batch.attributes or {})["motionlift.batch.size"] == 2


async def test_nothing_is_traced_without_a_request_span() -> None:
    memory = memory_tracer()
    backend = FakeBackend()
    lifter = Lifter(backend, Settings(max_queue_delay_ms=0), tracer=memory.tracer)
    await lifter.start()
    try:
        await lifter.lift([track()], OPTIONS)
    finally:
        await lifter.close()
    assert memory.spans() == []
    assert backend.headers == [None]


async def test_a_streams_trace_holds_its_first_windows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_runner, "TRACED_WINDOWS", 2)
    memory = memory_tracer()
    backend = FakeBackend(window=8)
    lifter = Lifter(backend, Settings(max_queue_delay_ms=0), tracer=memory.tracer)
    await lifter.start()
    try:
        with memory.tracer.request("LiftStream", {}, "stream-1"):
            options = StreamOptions.from_mapping({"format": "h36m", "normalization": "none", "window": 4})
            session = lifter.open_stream(options, request_id="stream-1")
            answers = []
            for t in range(4):  # causal: every frame is a window of its own
                pose = np.full((17, 3), 0.5, np.float32)
                session.push([TrackFrame("a", pose, field="frame.tracks[0]")])
                answers.append(await anext(session.answers()))
                assert answers[-1].frame_index == t
            await session.finish()
            await session.close()
    finally:
        await lifter.close()
    stream, windows = memory.one("LiftStream"), memory.named("window")
    assert len(windows) == 2 and all(is_child(w, stream) for w in windows)
    assert [dict(w.attributes or {}) for w in windows] == [
        {"motionlift.track": "a", "motionlift.frames": 1, "motionlift.window_frames": n} for n in (1, 2)
    ]
    assert len(memory.named("queue")) == len(memory.named("batch")) == len(memory.named("backend")) == 2
    assert len(backend.batches) == 4  # every window ran; the later two untraced
    assert backend.headers[2:] == [None, None]
