"""The ``TracerProvider`` of ``motionlift serve``, made once at startup from the ``OTEL_*`` variables (``Tracing``):
spans go through a ``BatchSpanProcessor`` (a background thread; the event loop never waits for a collector) to the
OTLP exporter (gRPC or HTTP/protobuf) and/or the console. Nothing is registered globally: the tracer is passed in.
"""

from __future__ import annotations

from importlib import metadata

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from service.config import Tracing
from service.telemetry.otel import OtelTracer


def exporter(name: str, tracing: Tracing) -> SpanExporter:
    """The exporter ``name`` (``otlp`` or ``console``). The OTLP exporters read their endpoint, headers, timeout
    and compression from the ``OTEL_EXPORTER_OTLP_*`` variables themselves."""
    if name == "console":
        return ConsoleSpanExporter(service_name=tracing.service_name)
    if tracing.protocol() == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    return GrpcExporter()


def make_tracer(tracing: Tracing) -> OtelTracer:
    """A tracer over a new provider with ``tracing``'s exporters (at least one: check ``tracing.exporters()``).
    The sampler is the SDK's, from ``OTEL_TRACES_SAMPLER`` (default: parent-based, always on)."""
    version = metadata.version("motionlift")
    resource = Resource.create({"service.name": tracing.service_name, "service.version": version})
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)  # the service closes it at its shutdown
    for name in tracing.exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter(name, tracing)))
    return OtelTracer(provider, version)
