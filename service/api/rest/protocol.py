"""uvicorn's HTTP/1.1 protocol (httptools) with the two limits uvicorn does not have:

- **headers in time**: a request's headers must arrive within ``read_timeout_s`` of its first byte (or of the
  connection, when nothing comes); otherwise the connection gets 408 and is closed. uvicorn waits forever for
  headers, so a client that opens connections and sends half a request line held them until shutdown;
- **open connections**: beyond ``max_connections``, a new connection gets 503 and is closed at once (uvicorn's
  ``limit_concurrency`` answers a plain-text 503, outside the service's error envelope).

Both answers are written on the socket directly, in the error envelope, with a fresh request id. The body's own
timeout and size are ``middleware.BodyLimit``'s.
"""

from __future__ import annotations

import json
import uuid
from asyncio import TimerHandle, Transport
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import LiftError, Overloaded, RequestTimeout

REASONS = {408: "Request Timeout", 503: "Service Unavailable"}


def limited_http(*, read_timeout_s: float, max_connections: int) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these limits."""

    class LimitedHttp(_LimitedHttp):
        pass

    LimitedHttp.read_timeout_s = read_timeout_s
    LimitedHttp.max_connections = max_connections
    return LimitedHttp


class _LimitedHttp(HttpToolsProtocol):
    read_timeout_s: float = 30.0
    max_connections: int = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: TimerHandle | None = None

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            error = Overloaded(f"too many open connections (at most {self.max_connections}); retry", retry_after_s=1.0)
            self._refuse(error, retry_after=True)
            return
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
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

    def _refuse(self, error: LiftError, *, retry_after: bool = False) -> None:
        if self.transport.is_closing():
            return
        request_id = uuid.uuid4().hex
        body = json.dumps({"error": {**error.to_dict(), "request_id": request_id}}).encode()
        head = [
            f"HTTP/1.1 {error.http_status} {REASONS[error.http_status]}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            f"x-request-id: {request_id}",
            "connection: close",
        ] + (["retry-after: 1"] if retry_after else [])
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        self.transport.close()
