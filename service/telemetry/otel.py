"""The core's ``Tracer`` (``service.core.trace``) over OpenTelemetry: spans of a ``TracerProvider`` made at startup
(``service.telemetry.provider``, or a test's), W3C trace context in and out. Imported only when tracing is on."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service.core.trace import CURRENT, NO_SPAN, Kind, Span, Value
from service.telemetry.logs import current_task

KINDS = {"internal": trace.SpanKind.INTERNAL, "client": trace.SpanKind.CLIENT}
SCOPE = "motionlift"  # the instrumentation scope of every span


class _Span:
    """``service.core.trace.Span`` over an OpenTelemetry span."""

    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set(self, key: str, value: Value) -> None:
        self._span.set_attribute(key, value)

    def fail(self, description: str) -> None:
        self._span.set_status(trace.Status(trace.StatusCode.ERROR, description))


class OtelTracer:
    """Spans of ``provider``; ``close`` flushes what is not exported yet and shuts the provider down."""

    def __init__(self, provider: TracerProvider, version: str = "") -> None:
        self._provider = provider
        self._tracer = provider.get_tracer(SCOPE, version or None)
        self._propagator = TraceContextTextMapPropagator()  # W3C traceparent/tracestate, nothing global

    @property
    def on(self) -> bool:
        return True

    @contextmanager
    def request(self, name: str, headers: Mapping[str, str], request_id: str) -> Iterator[Span]:
        # Made current by hand: the block may be an async generator's (a gRPC stream) that another task closes, and
        # only the task that made the span current may restore its context (the span ends wherever the block does).
        parent = self._propagator.extract(headers)
        attributes = {"motionlift.request_id": request_id}
        span = self._tracer.start_span(name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        task = current_task()
        try:
            yield _Span(span)
        finally:
            if current_task() is task:
                otel_context.detach(token)
            span.end()

    def span(
        self, name: str, *, parent: object = CURRENT, links: Sequence[object] = (), kind: Kind = "internal"
    ) -> AbstractContextManager[Span]:
        if parent is None:
            return _muted()
        if parent is CURRENT:
            if not trace.get_current_span().is_recording():
                return NO_SPAN  # never the start of a trace of its own
            context = None
        else:
            if not isinstance(parent, trace.Span):
                raise TypeError(f"a span's parent comes from current(), got {parent!r}")
            context = trace.set_span_in_context(parent)
        linked = [trace.Link(s.get_span_context()) for s in links if isinstance(s, trace.Span)]
        return self._start(name, context, linked, KINDS[kind])

    @contextmanager
    def _start(
        self, name: str, context: otel_context.Context | None, links: list[trace.Link], kind: trace.SpanKind
    ) -> Iterator[Span]:
        with self._tracer.start_as_current_span(name, context=context, kind=kind, links=links) as span:
            yield _Span(span)

    def current(self) -> object | None:
        span = trace.get_current_span()
        return span if span.is_recording() else None

    def headers(self) -> Mapping[str, str] | None:
        if not trace.get_current_span().is_recording():
            return None
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier

    def ids(self) -> tuple[str, str] | None:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format(context.trace_id, "032x"), format(context.span_id, "016x")

    def close(self) -> None:
        self._provider.shutdown()


@contextmanager
def _muted() -> Iterator[Span]:
    """No span, and none below: the current span is the invalid one while the block runs."""
    with trace.use_span(trace.INVALID_SPAN):
        yield NO_SPAN
