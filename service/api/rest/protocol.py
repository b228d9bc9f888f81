"""uvicorn's HTTP/1.1 protocol (httptools) with what uvicorn does not have:

- **headers in time**: a request's headers must arrive within ``read_timeout_s`` of its first byte (or of the
  connection, when nothing comes); otherwise the connection gets 408 and is closed. uvicorn waits forever for
  headers, so a client that opens connections and sends half a request line held them until shutdown;
- **open connections**: beyond ``max_connections``, a new connection gets 503 and is closed at once (uvicorn's
  ``limit_concurrency`` answers a plain-text 503, outside the service's error envelope);
- **refusal at the door**: ``POST /lift`` that ``admission`` refuses (no valid API key: 401; the queue is full,
  the service is not ready: 503) is answered from here, as soon as its headers are in, without an ASGI task,
  FastAPI or a parse: its body is discarded by the HTTP parser as it arrives and the connection stays usable. At
  10x overload most requests are refusals, and through the whole stack each cost the model's CPU about a
  millisecond;
- **refusals that do not feed a retry storm**: that 503 is sent ``refusal_delay_s`` after the request is complete,
  with the connection's reading paused meanwhile. A client that retries at once (most load generators, many
  naive clients) otherwise turns every refusal into another one: at 10x overload on 2 cores the loop then spent a
  core on about 2,800 refusals/s and the model got what was left. Waiting costs nothing (a timer), caps the
  refusals at ``clients / delay``, and keeps the answer well within the 50 ms a refusal may take.

These answers are written on the socket directly, in the error envelope, with the request's id: the client's
``x-request-id`` (its first 128 characters, as ``middleware.RequestId`` takes it) or a fresh one, the same id
that admission's audit line and count carry. The body's own
timeout and size are ``middleware.BodyLimit``'s; the route checks admission again for servers without this
protocol (tests).
"""

from __future__ import annotations

import json
import uuid
from asyncio import TimerHandle, Transport
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import LiftError, Overloaded, RequestTimeout

REASONS = {401: "Unauthorized", 408: "Request Timeout", 503: "Service Unavailable"}


# Given the request's Authorization header and its id: None when admitted; else the (counted, audit-logged)
# refusal to answer (401, 503).
Admission = Callable[[bytes | None, str], LiftError | None]
MAX_REQUEST_ID = 128  # as middleware.RequestId's


def limited_http(
    *,
    read_timeout_s: float,
    max_connections: int,
    admission: Admission | None = None,
    refusal_delay_s: float = 0.0,
) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these limits and this admission of /lift."""

    class LimitedHttp(_LimitedHttp):
        pass

    LimitedHttp.read_timeout_s = read_timeout_s
    LimitedHttp.max_connections = max_connections
    LimitedHttp.refusal_delay_s = refusal_delay_s
    LimitedHttp.admission = staticmethod(admission) if admission is not None else None
    return LimitedHttp


class _LimitedHttp(HttpToolsProtocol):
    read_timeout_s: float = 30.0
    max_connections: int = 1000
    admission: Admission | None = None
    refusal_delay_s: float = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: TimerHandle | None = None
        self._refusal: LiftError | None = None  # the answer of a request refused at its headers
        self._refusal_id = ""  # and that request's id
        self._pending: TimerHandle | None = None  # a refusal waiting for its delay to pass
        self._flush: Callable[[], None] | None = None  # sends that refusal now

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            error = Overloaded(f"too many open connections (at most {self.max_connections}); retry", retry_after_s=1.0)
            self._refuse(error, retry_after=True)
            return
        self._arm()

    def on_message_begin(self) -> None:
        self._send_pending()  # a pipelined request behind a delayed refusal: answers keep their order
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._refusal = self._admit()
        if self._refusal is None:
            super().on_headers_complete()
        elif self.expect_100_continue:  # the client waits for a go-ahead before its body: answer now, and close
            self._refuse(self._refusal, retry_after=True, request_id=self._refusal_id)

    def on_body(self, body: bytes) -> None:
        if self._refusal is None:
            super().on_body(body)  # else discarded: the request is answered when it is complete

    def on_message_complete(self) -> None:
        if self._refusal is None:
            super().on_message_complete()
            return
        refusal, self._refusal = self._refusal, None
        request_id = self._refusal_id
        close = not self.parser.should_keep_alive()
        if self.refusal_delay_s <= 0:
            self._refuse(refusal, retry_after=True, close=close, request_id=request_id)
            return

        def flush() -> None:
            self._pending = self._flush = None
            self._refuse(refusal, retry_after=True, close=close, request_id=request_id)
            if not close and not self.transport.is_closing():
                self.transport.resume_reading()

        self.transport.pause_reading()
        self._flush = flush
        self._pending = self.loop.call_later(self.refusal_delay_s, flush)

    def _send_pending(self) -> None:
        if self._pending is not None and self._flush is not None:
            self._pending.cancel()
            self._flush()

    def _admit(self) -> LiftError | None:
        """The refusal of a ``POST /lift`` that admission turns away; None for anything else."""
        if self.admission is None or self.parser.get_method() != b"POST" or self.url.split(b"?")[0] != b"/lift":
            return None
        if self.cycle is not None and not self.cycle.response_complete:
            return None  # a pipelined request behind one in flight: the route decides when its turn comes
        headers = dict(self.headers)
        given = headers.get(b"x-request-id", b"").decode("latin-1")[:MAX_REQUEST_ID]
        self._refusal_id = given or uuid.uuid4().hex
        return self.admission(headers.get(b"authorization"), self._refusal_id)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._pending is not None:  # the client left before its refusal: nothing to send
            self._pending.cancel()
            self._pending = self._flush = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.read_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:  # no request is being answered on it
            self._refuse(RequestTimeout(f"the request headers did not arrive within {self.read_timeout_s:g} s"))

    def _refuse(self, error: LiftError, *, retry_after: bool = False, close: bool = True, request_id: str = "") -> None:
        if self.transport.is_closing():
            return
        request_id = request_id or uuid.uuid4().hex
        body = json.dumps({"error": {**error.to_dict(), "request_id": request_id}}).encode()
        head = [
            f"HTTP/1.1 {error.http_status} {REASONS[error.http_status]}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            f"x-request-id: {request_id}",
        ]
        if error.http_status == 401:
            head.append('www-authenticate: Bearer realm="motionlift"')
        elif retry_after:
            head.append(f"retry-after: {error.retry_after()}")
        if close:
            head.append("connection: close")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        if close:
            self.transport.close()
