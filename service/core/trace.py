"""What the service asks of a tracer: spans around its stages, and the trace context to forward. Framework-free:
the OpenTelemetry one is ``service.telemetry.otel``; ``OFF`` is the one used when tracing is off.

The spans of one request (README "Tracing and logs"): the edge's ``request`` span (continuing the caller's W3C
``traceparent``) > ``lift`` > ``prepare``, ``queue`` > ``batch`` > ``backend``, ``answer``. A batch carries the
windows of several callers: its span is a child of the first caller's ``queue`` span and links the others.

Internal spans never start a trace of their own: a ``span`` whose parent does not record (no request span around
it, or tracing off) is the no-op span, and so are its children. ``OFF`` answers every call with the same objects,
so a service without tracing pays a method call per stage and allocates nothing for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Final, Literal, Protocol

Value = str | int | float | bool
Kind = Literal["internal", "client"]


class _Current:
    def __repr__(self) -> str:
        return "CURRENT"


CURRENT: Final = _Current()  # a span's default parent: the span current where it starts


class Span(Protocol):
    """An open span. Exceptions leaving an internal span's block are recorded on it (status ERROR)."""

    def set(self, key: str, value: Value) -> None:
        """Set an attribute (``motionlift.*`` names, or OpenTelemetry's semantic conventions)."""
        ...

    def fail(self, description: str) -> None:
        """Mark the span's outcome an error (a request span's 5xx, INTERNAL, UNAVAILABLE...)."""
        ...


class Tracer(Protocol):
    """Makes spans. ``on`` is False for ``OFF``: callers may skip work that only feeds spans."""

    @property
    def on(self) -> bool: ...

    def request(self, name: str, headers: Mapping[str, str], request_id: str) -> AbstractContextManager[Span]:
        """An edge's server span for one request or stream, current while open: the child of the trace context
        in ``headers`` (W3C ``traceparent``, ``tracestate``; a new trace without it or when it is malformed).
        Exceptions are not recorded: the edge says how the request ended (``set``, ``fail``)."""
        ...

    def span(
        self, name: str, *, parent: object = CURRENT, links: Sequence[object] = (), kind: Kind = "internal"
    ) -> AbstractContextManager[Span]:
        """A span, current while open: the child of ``parent`` (a ``current()`` handle, or ``CURRENT``), linked to
        ``links``. ``parent=None``: no span, and none below it either (work left untraced on purpose)."""
        ...

    def current(self) -> object | None:
        """A handle of the current span, to parent work done in another task (a batch); None if none records."""
        ...

    def headers(self) -> Mapping[str, str] | None:
        """The current span's W3C trace context (``traceparent``, ``tracestate``) to forward to a server this
        process calls; None when no span records."""
        ...

    def ids(self) -> tuple[str, str] | None:
        """The current span's trace id and span id (hex, as in ``traceparent``) for log lines; None without one."""
        ...

    def close(self) -> None:
        """Export what is not exported yet, then stop (blocking: the exporter may wait for its collector)."""
        ...


class _NoSpan:
    def set(self, key: str, value: Value) -> None:
        pass

    def fail(self, description: str) -> None:
        pass

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


NO_SPAN: Final = _NoSpan()


class _Off:
    """The tracer of a service without tracing: the same no-op span for everything."""

    @property
    def on(self) -> bool:
        return False

    def request(self, name: str, headers: Mapping[str, str], request_id: str) -> _NoSpan:
        return NO_SPAN

    def span(
        self, name: str, *, parent: object = CURRENT, links: Sequence[object] = (), kind: Kind = "internal"
    ) -> _NoSpan:
        return NO_SPAN

    def current(self) -> None:
        return None

    def headers(self) -> None:
        return None

    def ids(self) -> None:
        return None

    def close(self) -> None:
        pass


OFF: Final[Tracer] = _Off()
