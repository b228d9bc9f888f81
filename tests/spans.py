"""Tracing for tests: the service's OpenTelemetry tracer over the SDK's in-memory exporter (every span kept as it
ends), and reading the span tree back."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from service.telemetry.otel import OtelTracer

# A caller's trace context: W3C traceparent version 00, sampled (https://www.w3.org/TR/trace-context/).
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


class _Starts(SpanProcessor):
    """Counts spans by name as they start (the exporter sees them only when they end)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        with self._lock:
            self.counts[span.name] += 1


@dataclass
class Memory:
    tracer: OtelTracer
    exporter: InMemorySpanExporter
    starts: _Starts = field(default_factory=_Starts)

    def started(self, name: str) -> int:
        """Spans named ``name`` started so far (ended or not)."""
        return self.starts.counts[name]

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"{len(found)} spans named {name!r} in {[s.name for s in self.spans()]}"
        return found[0]

    def clear(self) -> None:
        self.exporter.clear()
        self.starts.counts.clear()


def memory_tracer() -> Memory:
    """A tracer whose spans are kept in memory (sampler: parent-based, always on, as the SDK's default)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    starts = _Starts()
    provider.add_span_processor(starts)
    return Memory(OtelTracer(provider), exporter, starts)


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    """``child``'s parent is ``parent``, in the same trace."""
    assert child.context is not None and parent.context is not None
    return bool(parent_of(child) == parent.context.span_id and child.context.trace_id == parent.context.trace_id)


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    """The span's trace id and span id as ``traceparent`` writes them."""
    assert span.context is not None
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def linked(span: ReadableSpan) -> Sequence[int]:
    """The span ids ``span`` links to."""
    return [link.context.span_id for link in span.links]
