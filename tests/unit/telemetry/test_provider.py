"""Which OTEL_* variables turn tracing on, and the exporters they pick (tracing is off unless asked for)."""

from __future__ import annotations

import os

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from pydantic import ValidationError

from service.api.command import make_tracer
from service.config import Tracing
from service.core.trace import OFF
from service.telemetry.otel import OtelTracer
from service.telemetry.provider import exporter


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def test_off_unless_an_exporter_or_an_endpoint_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Tracing().exporters() == [] and make_tracer(Tracing()) is OFF
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-eu")  # naming the service alone turns nothing on
    assert Tracing().exporters() == [] and Tracing().service_name == "gateway-eu"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    assert Tracing().exporters() == ["otlp"]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console, otlp,console")
    assert Tracing().exporters() == ["console", "otlp"]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert Tracing().exporters() == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert Tracing().exporters() == []


def test_an_unknown_exporter_or_protocol_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValidationError, match="unknown exporter 'zipkin': this service has otlp, console and none"):
        Tracing()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ValidationError, match="exporter_otlp_protocol"):
        Tracing()


def test_the_exporters_follow_the_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(exporter("console", Tracing()), ConsoleSpanExporter)
    assert isinstance(exporter("otlp", Tracing()), GrpcExporter)  # the Python SDK's default transport
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    assert isinstance(exporter("otlp", Tracing()), HttpExporter)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")  # the traces-only variable wins
    assert isinstance(exporter("otlp", Tracing()), GrpcExporter)


def test_a_tracer_is_made_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    tracer = make_tracer(Tracing())
    assert isinstance(tracer, OtelTracer) and tracer.on
    tracer.close()
