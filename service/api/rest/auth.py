"""The REST edge's key check: every request but the probes (and the docs) needs ``Authorization: Bearer <key>``
when the service has a keys file (``service.core.access``). The caller is put in ``scope["state"]["caller"]`` for
the routes (quotas, the audit log); a stranger gets 401 in the error envelope with ``WWW-Authenticate: Bearer``,
before any route runs or any body is read. ``POST /lift`` is checked earlier still, at the door
(``protocol.py``), so strangers never reach admission either.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from service.core.access import Access
from service.errors import LiftError, Unauthenticated

# Open without a key: what a load balancer or an orchestrator probes, the API's own description (the OpenAPI
# document states the bearer scheme, so /docs can send a key with "Authorize"), and the viewer's static page
# (it holds no data; its calls carry the key the user types in).
OPEN: Final = frozenset({"/healthz", "/readyz", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/viewer"})
OPEN_PREFIXES: Final = ("/static-offline-docs/", "/viewer/static/")
CHALLENGE: Final = (b"www-authenticate", b'Bearer realm="motionlift"')


def is_open(path: str) -> bool:
    return path in OPEN or path.startswith(OPEN_PREFIXES)


def authorization(scope: Scope) -> str | None:
    """The request's ``Authorization`` header, or None."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


class KeyCheck:
    """ASGI middleware over ``access`` (see the module); does nothing when ``access`` needs no keys."""

    def __init__(self, app: ASGIApp, access: Access, count: Callable[[LiftError], object] = lambda error: None) -> None:
        self.app = app
        self.access = access
        self.count = count  # every request has its outcome in the metrics, refusals here included

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.access.enabled or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            caller = self.access.authenticate(authorization(scope))
        except Unauthenticated as exc:
            self.count(exc)
            await refuse(scope, send, exc)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


async def refuse(scope: Scope, send: Send, error: LiftError) -> None:
    """Answer ``error`` in the envelope; 401 carries the challenge, and closes (the body is not read)."""
    request_id = str(scope.get("state", {}).get("request_id") or uuid.uuid4().hex)
    body = json.dumps({"error": {**error.to_dict(), "request_id": request_id}}).encode()
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    if isinstance(error, Unauthenticated):
        headers.append(CHALLENGE)
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
