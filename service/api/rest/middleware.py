"""ASGI middleware of the REST edge: request ids with a last-resort 500, tracing, and the request body's limits.

Pure ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware costs about a millisecond
per request, which is most of the server's own time on a small model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.trace import Tracer
from service.errors import PayloadTooLarge, RequestTimeout
from service.telemetry.logs import REQUEST_ID

log = logging.getLogger(__name__)


class RequestId:
    """Give every request an id (the client's ``x-request-id`` or a new one), echo it as a header, and turn
    any unhandled exception into a 500 carrying the id (and a log line) -- never a traceback to the client. The id
    is ``REQUEST_ID`` while the request runs, for its log lines (uvicorn's access line included).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = given[:128] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in %s %s (request %s)", scope.get("method"), scope.get("path"), request_id)
            if started:
                raise
            body = json.dumps({"error": {"code": "internal", "message": "internal error", "request_id": request_id}})
            await send_with_id(
                {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body.encode()})
        finally:
            REQUEST_ID.reset(token)


class Traced:
    """A server span for each request to one of ``paths`` (the lifts; probes and pages are not traced), continuing
    the caller's W3C ``traceparent``: ``POST /lift`` with the request id, method, path and status (an error from
    500 up). Inside ``RequestId``; added only when tracing is on."""

    def __init__(self, app: ASGIApp, tracer: Tracer, paths: tuple[str, ...]) -> None:
        self.app = app
        self.tracer = tracer
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in self.paths:
            await self.app(scope, receive, send)
            return
        context = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in TRACE_HEADERS}
        method = scope["method"]
        status = 500  # unless an answer starts

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.tracer.request(f"{method} {path}", context, scope["state"]["request_id"]) as span:
            span.set("http.request.method", method)
            span.set("url.path", path)
            try:
                await self.app(scope, receive, send_status)
            finally:
                span.set("http.response.status_code", status)
                if status >= 500:
                    span.fail(f"HTTP {status}")


TRACE_HEADERS = (b"traceparent", b"tracestate")


class BodyLimit:
    """Limits on a request body, enforced while the app reads it (nothing is read here):

    - more than ``max_bytes``: 413 at once when ``Content-Length`` says so, else ``PayloadTooLarge`` raised from
      ``receive`` as soon as the streamed body passes the limit;
    - not all there within ``read_timeout_s`` of the first read (a half-sent body): ``RequestTimeout`` (408).

    Both errors reach the app's ``LiftError`` handler, which answers with ``Connection: close``: the rest of the
    body is never read. Reads after the body is complete (a disconnect watch) are not timed.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, send)
            return
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Receive) -> Receive:
        size = 0
        complete = False
        deadline: float | None = None

        async def limited() -> Message:
            nonlocal size, complete, deadline
            if complete:
                return await receive()
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.read_timeout_s
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {self.read_timeout_s:g} s", field="body"
                ) from None
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.max_bytes:
                    raise _too_large(self.max_bytes)
                complete = not message.get("more_body", False)
            return message

        return limited

    async def _reject(self, scope: Scope, send: Send) -> None:
        error = _too_large(self.max_bytes)
        request_id = str(scope.get("state", {}).get("request_id") or uuid.uuid4().hex)
        body = json.dumps({"error": {**error.to_dict(), "request_id": request_id}}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]  # RequestId adds the id
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is over the limit of {max_bytes} bytes", field="body")
