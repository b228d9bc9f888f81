"""A real `motionlift serve` process with `--log-format json` and tracing configured by OTEL_* variables only
(the console exporter): every log line is one JSON object; a request's audit and access lines carry its request
id and the caller's trace id; its spans reach the exporter, flushed when the process stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.api.pb.motionlift.v1 import lift_pb2_grpc
from service.bench.process import free_port, wait_ready
from tests.data import walk
from tests.rpc import SIZE, keypoints
from tests.spans import CALLER_TRACE, TRACEPARENT

pytestmark = pytest.mark.slow


def serve(tiny_model: Path, tmp_path: Path) -> tuple[list[dict[str, Any]], str]:
    """Run the server, send one REST and one gRPC lift, stop it; its log lines (parsed) and its stdout."""
    rest, rpc = free_port(), free_port()
    command = [sys.executable, "-m", "service", "serve", "--model", str(tiny_model), "--port", str(rest)]
    command += ["--grpc-port", str(rpc), "--log-format", "json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MOTIONLIFT_"))}
    env |= {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "lift-logs"}
    logs, spans = tmp_path / "stderr", tmp_path / "stdout"
    with logs.open("wb") as err, spans.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        try:
            wait_ready(proc, f"http://127.0.0.1:{rest}/readyz", 60, why_exited=lambda: logs.read_text()[-2000:])
            body = {"keypoints": walk(30), "format": "coco", "image_size": [1920, 1080]}
            headers = {"traceparent": TRACEPARENT, "x-request-id": "rest-logs-1"}
            answer = httpx.post(f"http://127.0.0.1:{rest}/lift", json=body, headers=headers, timeout=60)
            assert answer.status_code == 200
            with grpc.insecure_channel(f"127.0.0.1:{rpc}") as channel:
                stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
                request = pb.LiftRequest(
                    tracks=[pb.Track(keypoints=keypoints(walk(30)))], format=pb.FORMAT_COCO, image_size=SIZE
                )
                stub.Lift(request, metadata=(("traceparent", TRACEPARENT), ("x-request-id", "grpc-logs-1")), timeout=60)
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    lines = logs.read_text().splitlines()
    assert lines, "the server logged nothing"
    return [json.loads(line) for line in lines], spans.read_text()  # every line is one JSON object


def test_json_lines_carry_request_and_trace_ids(tiny_model: Path, tmp_path: Path) -> None:
    lines, stdout = serve(tiny_model, tmp_path)
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
    audit = {line["request_id"]: line for line in lines if line["logger"] == "motionlift.audit"}
    for request_id, protocol in (("rest-logs-1", "rest"), ("grpc-logs-1", "grpc")):
        line = audit[request_id]
        assert (line["protocol"], line["frames"], line["outcome"], line["key"]) == (protocol, 30, "ok", "-")
        assert line["trace_id"] == CALLER_TRACE and len(line["span_id"]) == 16
    access = [line for line in lines if line["logger"] == "uvicorn.access" and line["path"] == "/lift"]
    assert len(access) == 1
    assert (access[0]["method"], access[0]["status"], access[0]["request_id"]) == ("POST", 200, "rest-logs-1")
    assert access[0]["trace_id"] == CALLER_TRACE
    # The console exporter wrote the spans (flushed at shutdown), in the caller's trace, under the service's name.
    assert '"name": "POST /lift"' in stdout and '"name": "motionlift.v1.Lifter/Lift"' in stdout
    assert f'"trace_id": "0x{CALLER_TRACE}"' in stdout and '"service.name": "lift-logs"' in stdout
