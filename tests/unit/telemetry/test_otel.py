"""The OpenTelemetry tracer: W3C trace context in (a caller's ``traceparent`` continued, a malformed one ignored)
and out, muted work, ids for log lines, and ``close`` flushing spans a batch processor still holds."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.core.trace import NO_SPAN
from service.telemetry.otel import OtelTracer
from tests.spans import CALLER_SPAN, CALLER_TRACE, TRACEPARENT, hex_ids, is_child, memory_tracer


def test_a_callers_traceparent_and_tracestate_are_continued() -> None:
    memory = memory_tracer()
    with memory.tracer.request("POST /lift", {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}, "r-1"):
        forwarded = memory.tracer.headers()
        ids = memory.tracer.ids()
    span = memory.one("POST /lift")
    assert span.parent is not None and span.parent.is_remote
    assert hex_ids(span)[0] == CALLER_TRACE and format(span.parent.span_id, "016x") == CALLER_SPAN
    assert dict(span.attributes or {}) == {"motionlift.request_id": "r-1"}
    assert ids == hex_ids(span)
    assert forwarded == {"traceparent": f"00-{CALLER_TRACE}-{hex_ids(span)[1]}-01", "tracestate": "vendor=1"}


def test_a_malformed_traceparent_starts_a_new_trace() -> None:
    memory = memory_tracer()
    for given in ("00-zz-00f067aa0ba902b7-01", f"00-{'0' * 32}-{CALLER_SPAN}-01", "garbage"):
        with memory.tracer.request("POST /lift", {"traceparent": given}, "r"):
            pass
    assert [s.parent for s in memory.spans()] == [None, None, None]
    assert len({hex_ids(s)[0] for s in memory.spans()}) == 3


def test_internal_spans_need_a_recording_parent_and_a_muted_block_has_none() -> None:
    memory = memory_tracer()
    assert memory.tracer.span("queue") is NO_SPAN  # nothing records: no trace starts here
    assert (memory.tracer.current(), memory.tracer.headers(), memory.tracer.ids()) == (None, None, None)
    with memory.tracer.request("stream", {}, "s"):
        handle = memory.tracer.current()
        with memory.tracer.span("window", parent=None):
            assert memory.tracer.span("queue") is NO_SPAN and memory.tracer.headers() is None
        with memory.tracer.span("client", kind="client"):
            pass
    with memory.tracer.span("window", parent=handle, links=[handle]):  # explicit parent, from another task
        pass
    stream, window, client = memory.one("stream"), memory.one("window"), memory.one("client")
    assert is_child(window, stream) and is_child(client, stream) and client.kind.name == "CLIENT"
    assert stream.context is not None and [link.context.span_id for link in window.links] == [stream.context.span_id]
    assert memory.named("queue") == []


def test_an_error_leaving_an_internal_span_is_recorded_and_request_spans_say_their_own() -> None:
    memory = memory_tracer()
    with memory.tracer.request("POST /lift", {}, "r") as request:
        try:
            with memory.tracer.span("backend"):
                raise RuntimeError("model crashed")
        except RuntimeError:
            request.fail("HTTP 500")
    backend, span = memory.one("backend"), memory.one("POST /lift")
    assert backend.status.status_code.name == "ERROR" and backend.events[0].name == "exception"
    assert (span.status.status_code.name, span.status.description) == ("ERROR", "HTTP 500")


def test_close_flushes_what_the_batch_processor_holds() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    tracer = OtelTracer(provider)
    with tracer.request("POST /lift", {}, "r"):
        pass
    assert exporter.get_finished_spans() == ()  # waiting for the processor's next export
    tracer.close()
    assert [s.name for s in exporter.get_finished_spans()] == ["POST /lift"]
