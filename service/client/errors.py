"""Answers of the service that are errors, back into the service's own typed errors (``service.errors``).

REST: the JSON body's ``error.code`` picks the class (the status when the body is not the service's);
``field``, ``message`` and ``Retry-After`` are kept. gRPC: the status code picks the class (the table of
``service.errors`` read backwards), or the ``motionlift-code`` trailing metadata when the service sent it (it tells
``Overloaded`` from ``QuotaExceeded``); the field comes from the ``motionlift-field`` trailing metadata and is cut
off the front of the details. RESOURCE_EXHAUSTED is ``Overloaded`` when the service says when to retry
(``retry-after-s``), else ``PayloadTooLarge`` (grpc refuses an oversized message without that metadata).
The request id, when known, is added as a note to the exception (``exc.__notes__``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from service.errors import (
    ERRORS,
    BadRequest,
    DeadlineExceeded,
    InvalidInput,
    LiftError,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    QuotaExceeded,
    RequestTimeout,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)

BY_CODE: dict[str, type[LiftError]] = {cls.code: cls for cls in ERRORS}
# Answers without the service's error body (a proxy, a crash page): the status picks the class (503: Unavailable).
BY_STATUS: dict[int, type[LiftError]] = {
    cls.http_status: cls
    for cls in (
        InvalidInput, BadRequest, NotFound, RequestTimeout, UnsupportedMediaType, PayloadTooLarge, Unauthenticated,
        QuotaExceeded,
    )
} | {503: Unavailable, 504: DeadlineExceeded}  # fmt: skip
BY_GRPC: dict[str, type[LiftError]] = {
    "INVALID_ARGUMENT": InvalidInput,
    "UNAVAILABLE": Unavailable,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "UNAUTHENTICATED": Unauthenticated,
}


def _noted(error: LiftError, request_id: str | None) -> LiftError:
    if request_id:
        error.add_note(f"request id: {request_id}")
    return error


def from_http(status: int, content: bytes, headers: Mapping[str, str]) -> LiftError:
    """The error of a non-200 answer of ``POST /lift``."""
    try:
        body = json.loads(content)["error"]
        code, message = str(body["code"]), str(body["message"])
        field, request_id = body.get("field"), body.get("request_id")
    except (ValueError, KeyError, TypeError):  # not the service's error body (a proxy, a crash page...)
        code, field, request_id = "", None, headers.get("x-request-id")
        message = f"HTTP {status}: {content[:200].decode('utf-8', 'replace')}"
    cls = BY_CODE.get(code) or BY_STATUS.get(status, LiftError)
    retry = headers.get("retry-after")
    retry_after = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
    return _noted(cls(message, field=field, retry_after_s=retry_after), request_id)


def from_grpc(code: str, details: str | None, metadata: Iterable[tuple[str, str | bytes]] | None) -> LiftError:
    """The error of a failed gRPC call: ``code`` is the ``grpc.StatusCode`` name."""
    meta = {k: v if isinstance(v, str) else v.decode("latin-1") for k, v in metadata or ()}
    message = details or code
    field = meta.get("motionlift-field")
    if field and message.startswith(f"{field}: "):
        message = message[len(field) + 2 :]
    retry = meta.get("retry-after-s")
    named = BY_CODE.get(meta.get("motionlift-code", ""))  # the service names its error; grpc's own errors do not
    if named is not None:
        cls: type[LiftError] = named
    elif code == "RESOURCE_EXHAUSTED":
        cls = Overloaded if retry is not None else PayloadTooLarge
    else:
        cls = BY_GRPC.get(code, LiftError)
    error = cls(message, field=field, retry_after_s=float(retry) if retry is not None else None)
    return _noted(error, meta.get("x-request-id"))
