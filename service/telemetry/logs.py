"""The service's log lines: plain text (the default) or one JSON object per line (``--log-format json``).

A JSON line has ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message``; ``request_id`` while
a request or stream is being handled (``REQUEST_ID``, set by the edges); ``trace_id`` and ``span_id`` while a span
records (tracing on); ``exception`` with the traceback when there is one; and the record's ``fields`` (the audit
log's ``key``, ``frames``, ``outcome``... as JSON values, ``service.core.audit``). uvicorn's access lines become
JSON too, with ``client``, ``method``, ``path`` and ``status``. Standard ``logging`` only: a ``Formatter``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

Format = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The id of the request or stream being handled in this task (edges set it with `request`); "-" read as none.
REQUEST_ID: ContextVar[str | None] = ContextVar("motionlift_request_id", default=None)

Ids = Callable[[], tuple[str, str] | None]


@contextmanager
def request(request_id: str) -> Iterator[None]:
    """Log lines of the block (and of tasks it starts) carry ``request_id``. The id is unset at the end only in
    the task that set it: an async generator (a gRPC stream's handler) may be closed from another task, whose
    context never had it."""
    token = REQUEST_ID.set(request_id)
    task = current_task()
    try:
        yield
    finally:
        if current_task() is task:
            REQUEST_ID.reset(token)


def current_task() -> asyncio.Task[Any] | None:
    """The running asyncio task; None outside one."""
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running event loop
        return None


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module). ``ids`` gives the current trace and span ids (the tracer's
    ``ids``); values that JSON cannot hold are written as their ``str``."""

    def __init__(self, ids: Ids | None = None) -> None:
        super().__init__()
        self._ids = ids

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        request_id = (fields or {}).get("request_id") or REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        ids = self._ids() if self._ids is not None else None
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _, status = record.args  # uvicorn's '%s - "%s %s HTTP/%s" %d'
            line.update(client=client, method=method, path=path, status=status)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _utc(created: float) -> str:
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"


def configure(level: str, format: Format, ids: Ids | None = None) -> None:
    """Send the root logger's records to stderr as ``format`` says, at ``level`` (a name: ``info``...). As
    ``logging.basicConfig``, which it calls: nothing changes when the root logger has handlers already (a process
    that configured its logging itself, or pytest's capture)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(ids) if format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
