"""JSON log lines: one object per record with time, level, logger, message, the request id, the trace ids, the
audit log's fields and uvicorn's access fields."""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest

from service.core import audit
from service.core.access import Caller
from service.telemetry.logs import REQUEST_ID, JsonFormatter, request


def record(name: str, msg: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)
    made.created = 1_700_000_000.25
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_a_plain_line_has_time_level_logger_message_and_the_ids_when_there_are_some() -> None:
    plain = json.loads(JsonFormatter().format(record("service.api", "serving %s", "tiny")))
    assert plain == {
        "time": "2023-11-14T22:13:20.250Z",
        "level": "INFO",
        "logger": "service.api",
        "message": "serving tiny",
    }
    formatter = JsonFormatter(ids=lambda: ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"))
    with request("req-7"):
        line = json.loads(formatter.format(record("service.api.rest.routes", "client went away")))
    assert (line["request_id"], line["trace_id"], line["span_id"]) == (
        "req-7",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
    )
    assert REQUEST_ID.get() is None  # the block's id ends with it


def test_the_audit_lines_fields_become_json_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=audit.log.name)
    audit.request(Caller("bob"), "audit-1", "rest", 27, "ok", 3.14159)
    audit.stream(Caller("bob"), "s-1", "close", 90, "cancelled")
    first, second = (json.loads(JsonFormatter().format(r)) for r in caplog.records)
    assert first["message"] == "audit key=bob request=audit-1 protocol=rest frames=27 outcome=ok latency_ms=3.1"
    assert {k: first[k] for k in ("key", "request_id", "protocol", "frames", "outcome", "latency_ms")} == {
        "key": "bob", "request_id": "audit-1", "protocol": "rest", "frames": 27, "outcome": "ok", "latency_ms": 3.1,
    }  # fmt: skip
    assert {k: second[k] for k in ("kind", "event", "request_id", "frames", "outcome")} == {
        "kind": "stream", "event": "close", "request_id": "s-1", "frames": 90, "outcome": "cancelled",
    }  # fmt: skip


def test_uvicorn_access_lines_exceptions_and_odd_values() -> None:
    access = record("uvicorn.access", '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", "/lift", "1.1", 200)
    line = json.loads(JsonFormatter().format(access))
    assert line["message"] == '127.0.0.1:5000 - "POST /lift HTTP/1.1" 200'
    assert (line["client"], line["method"], line["path"], line["status"]) == ("127.0.0.1:5000", "POST", "/lift", 200)
    try:
        raise ValueError("bad")
    except ValueError:
        failed = record("service", "failed", exc_info=sys.exc_info(), fields={"path": b"/x", "set": {1}})
    line = json.loads(JsonFormatter().format(failed))
    assert re.search(r"Traceback .*\nValueError: bad$", line["exception"], re.S)
    assert (line["path"], line["set"]) == ("b'/x'", "{1}")
