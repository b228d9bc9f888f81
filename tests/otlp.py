"""An OTLP/HTTP receiver for tests: a real HTTP server on 127.0.0.1 that takes ``POST /v1/traces`` (protobuf, or
OTLP's JSON, whose ids are hex) and keeps the spans, for checking what another process (tritonserver) traced."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class Received(NamedTuple):
    """One span as received, its ids in hex."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str


def _from_protobuf(body: bytes) -> list[Received]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return [
        Received(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex())
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for s in scope.spans
    ]


def _from_json(body: bytes) -> list[Received]:
    request = json.loads(body)
    return [
        Received(s["name"], s["traceId"].lower(), s["spanId"].lower(), s.get("parentSpanId", "").lower())
        for resource in request.get("resourceSpans", [])
        for scope in resource.get("scopeSpans", [])
        for s in scope.get("spans", [])
    ]


class Collector:
    """The spans received so far."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[Received] = []

    def add(self, spans: list[Received]) -> None:
        with self._lock:
            self._spans.extend(spans)

    def spans(self) -> list[Received]:
        with self._lock:
            return list(self._spans)


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Collector]]:
    """Serve until the block ends; yields the traces URL (``http://127.0.0.1:<port>/v1/traces``) and the spans."""
    received = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            as_json = self.headers.get("content-type", "").startswith("application/json")
            received.add(_from_json(body) if as_json else _from_protobuf(body))
            answer = b"{}" if as_json else ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/json" if as_json else "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    finally:
        server.shutdown()
        server.server_close()
