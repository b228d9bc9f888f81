"""Typed errors of the core and the one table that maps them onto HTTP and gRPC.

The core raises these; each edge (REST, gRPC) has one handler that reads ``http_status`` and
``grpc_code`` off the class. The core never imports fastapi or grpc, so the gRPC code is a name
(``grpc.StatusCode[name]`` at the edge).
"""

from __future__ import annotations

import math
from typing import ClassVar


class LiftError(Exception):
    """Base of every error a caller can be answered with.

    ``field`` names the request field at fault (dotted/indexed path such as ``tracks[1].keypoints``),
    when there is one. ``retry_after_s`` is set on errors a client may retry after a pause.
    """

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    grpc_code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None, retry_after_s: float | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s

    def retry_after(self) -> str:
        """The HTTP ``Retry-After`` value: whole seconds (RFC 9110), rounded up and at least 1, so that a client
        waiting what it is told is not refused again (1 s is said when ``retry_after_s`` is unset)."""
        return str(max(1, math.ceil(self.retry_after_s or 1)))

    def to_dict(self) -> dict[str, object]:
        """The JSON error body (without the request id, which the edge adds)."""
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidInput(LiftError):
    """The request is malformed: wrong shape, non-finite values, unknown layout, out-of-range option."""

    code = "invalid_input"
    http_status = 422
    grpc_code = "INVALID_ARGUMENT"


class BadRequest(LiftError):
    """The body cannot be read: not JSON (syntax, encoding, nesting), or not the object the endpoint takes."""

    code = "bad_request"
    http_status = 400
    grpc_code = "INVALID_ARGUMENT"


class NotFound(LiftError):
    """No such route (REST only; gRPC answers an unknown method UNIMPLEMENTED itself)."""

    code = "not_found"
    http_status = 404
    grpc_code = "NOT_FOUND"


class MethodNotAllowed(LiftError):
    """The route exists, not with this method."""

    code = "method_not_allowed"
    http_status = 405
    grpc_code = "UNIMPLEMENTED"


class RequestTimeout(LiftError):
    """The client did not send its whole request in time (``--read-timeout-s``); nothing of it was used."""

    code = "request_timeout"
    http_status = 408
    grpc_code = "DEADLINE_EXCEEDED"


class NotAcceptable(LiftError):
    """The answer cannot be given in the media type the ``Accept`` header asks for (e.g. BVH of several tracks)."""

    code = "not_acceptable"
    http_status = 406
    grpc_code = "INVALID_ARGUMENT"


class UnsupportedMediaType(LiftError):
    """The body is not ``application/json`` (or is compressed): the service reads plain JSON only."""

    code = "unsupported_media_type"
    http_status = 415
    grpc_code = "INVALID_ARGUMENT"


class PayloadTooLarge(LiftError):
    """The request is over a configured size: its body, or the work it needs (more windows than the queue can
    ever hold). Retrying the same request cannot help."""

    code = "payload_too_large"
    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class Overloaded(LiftError):
    """The queue is full; nothing of the request was queued.

    HTTP 503 rather than 429: the whole service is full, not this client over its own quota, and 503
    with ``Retry-After`` is what load balancers and retry policies treat as "try another replica / later".
    """

    code = "overloaded"
    http_status = 503
    grpc_code = "RESOURCE_EXHAUSTED"


class Unauthenticated(LiftError):
    """No API key, or one the service does not hold (unknown or revoked). The message never repeats the key."""

    code = "unauthenticated"
    http_status = 401
    grpc_code = "UNAUTHENTICATED"


class QuotaExceeded(LiftError):
    """This key is over its own quota (frames per second, or streams at once); others are unaffected.
    ``retry_after_s`` says when its frames budget allows the request (429 ``Retry-After``)."""

    code = "quota_exceeded"
    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"


class Unavailable(LiftError):
    """The model is not loaded yet, or its backend (e.g. Triton) cannot be reached."""

    code = "unavailable"
    http_status = 503
    grpc_code = "UNAVAILABLE"


class DeadlineExceeded(LiftError):
    """The request's deadline passed before its answer was ready; its queued windows were dropped."""

    code = "deadline_exceeded"
    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"


class BackendError(LiftError):
    """The model backend failed on a batch, or answered values that are not finite (not the caller's fault)."""

    code = "backend_error"
    http_status = 500
    grpc_code = "INTERNAL"


# The table: every error the service answers with, each class once (the client maps answers back through it).
ERRORS: tuple[type[LiftError], ...] = (
    LiftError,
    InvalidInput,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    NotAcceptable,
    UnsupportedMediaType,
    PayloadTooLarge,
    Overloaded,
    Unauthenticated,
    QuotaExceeded,
    Unavailable,
    DeadlineExceeded,
    BackendError,
)
