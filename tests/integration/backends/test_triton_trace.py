"""The trace context reaches Triton: the core over the Triton backend, talking to a real gRPC server of Triton's
protocol that records each inference call's metadata (tests/tritonwire.py), sends the ``traceparent`` of the
batch's ``backend`` span with every call, and nothing when the request is not traced; and a real tritonserver with
its OpenTelemetry tracing on puts its spans of the call under that span (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.config import Settings
from service.core.lifter import Lifter
from service.core.options import LiftOptions
from service.core.tracks import Track

pytest.importorskip("tritonclient.grpc.aio", reason="needs the `gateway` extra")

from service.backends.triton.backend import TritonBackend
from tests.otlp import otlp_receiver
from tests.servers import until
from tests.spans import CALLER_TRACE, TRACEPARENT, hex_ids, is_child, memory_tracer
from tests.tritonserver import skip_without_triton, triton_session
from tests.tritonwire import recording_triton

OPTIONS = LiftOptions(format="h36m", normalization="none", flip=False)


def sequence(frames: int) -> Track:
    kp = np.zeros((frames, 17, 3), np.float32)
    kp[..., :2] = np.random.default_rng(frames).uniform(-1, 1, size=(frames, 17, 2))
    kp[..., 2] = 1.0
    return Track("a", kp)


async def test_the_backend_spans_traceparent_goes_to_triton_as_metadata() -> None:
    memory = memory_tracer()
    async with recording_triton() as (triton, url):
        settings = Settings(backend="triton", triton_urls=[url], max_queue_delay_ms=0)
        lifter = Lifter(TritonBackend([url], start_wait_s=10), settings, tracer=memory.tracer)
        await lifter.start()
        try:
            with memory.tracer.request("POST /lift", {"traceparent": TRACEPARENT}, "to-triton"):
                result = await lifter.lift([sequence(27)], OPTIONS, request_id="to-triton")
            await lifter.lift([sequence(27)], OPTIONS)  # not traced: nothing to forward
        finally:
            await lifter.close()
    assert result.tracks[0].joints3d.shape == (27, 17, 3)
    backend, batch = memory.one("backend"), memory.one("batch")
    assert is_child(backend, batch) and backend.kind.name == "CLIENT"
    assert dict(backend.attributes or {}) == {
        "motionlift.backend": "triton",
        "motionlift.device": "triton/gpu",  # as the production config's instance_group says
        "motionlift.batch.size": 1,
    }
    trace_id, span_id = hex_ids(backend)
    assert trace_id == CALLER_TRACE
    traced, untraced = triton.metadata
    assert traced["traceparent"] == f"00-{trace_id}-{span_id}-01"
    assert "traceparent" not in untraced


@pytest.mark.slow
async def test_a_real_tritonserver_continues_the_trace(tmp_path: Path) -> None:
    """Triton with its own OpenTelemetry tracing on: its spans of our batch are in our trace, under the
    ``backend`` span whose traceparent went with the call."""
    skip_without_triton()
    memory = memory_tracer()
    with otlp_receiver() as (url, received):
        flags = [
            "--trace-config=mode=opentelemetry",
            f"--trace-config=opentelemetry,url={url}",
            "--trace-config=rate=1",
            "--trace-config=level=TIMESTAMPS",
        ]
        with triton_session(tmp_path, flags) as setup:
            grpc_url = setup.server.grpc_url  # type: ignore[attr-defined]
            settings = Settings(backend="triton", triton_urls=[grpc_url], max_queue_delay_ms=0)
            lifter = Lifter(TritonBackend([grpc_url]), settings, tracer=memory.tracer)
            await lifter.start()
            try:
                with memory.tracer.request("POST /lift", {"traceparent": TRACEPARENT}, "to-tritonserver"):
                    await lifter.lift([sequence(27)], OPTIONS, request_id="to-tritonserver")
            finally:
                await lifter.close()
        # Triton has stopped: what its exporter held is flushed.
        until(lambda: any(s.trace_id == CALLER_TRACE for s in received.spans()), "Triton's spans", 30)
    backend = memory.one("backend")
    trace_id, span_id = hex_ids(backend)
    ours = [s for s in received.spans() if s.trace_id == trace_id]
    assert ours, f"no span of trace {trace_id} among {received.spans()}"
    # Triton's own tree: InferRequest > the model's span > compute, hung under our backend span.
    spans = {s.name: s for s in ours}
    assert set(spans) == {"InferRequest", "dstformer", "compute"}, ours
    assert spans["InferRequest"].parent_id == span_id
    assert spans["dstformer"].parent_id == spans["InferRequest"].span_id
    assert spans["compute"].parent_id == spans["dstformer"].span_id
