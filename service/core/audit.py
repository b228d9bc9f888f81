"""The audit log: one line per request on the ``motionlift.audit`` logger (INFO), whatever its outcome:

``audit key=<name> request=<id> protocol=rest|grpc frames=<n> outcome=<ok|error code> latency_ms=<ms>``

``key`` is the API key's name (``-`` without keys or before a key was checked), never the key itself. Streams get
a line when they open and one when they end (``kind=stream``, with the frames received). Silence it, or send it
elsewhere, with the logging configuration of that logger. Each record also carries its values as ``fields``
(``request_id`` for ``request``), which ``--log-format json`` writes as JSON fields of the line.
"""

from __future__ import annotations

import logging

from service.core.access import Caller

log = logging.getLogger("motionlift.audit")


def request(caller: Caller, request_id: str, protocol: str, frames: int, outcome: str, latency_ms: float) -> None:
    if log.isEnabledFor(logging.INFO):
        fields = {"key": caller.name, "request_id": request_id, "protocol": protocol, "frames": frames,
                  "outcome": outcome, "latency_ms": round(latency_ms, 1)}  # fmt: skip
        log.info(
            "audit key=%s request=%s protocol=%s frames=%d outcome=%s latency_ms=%.1f",
            caller.name, request_id, protocol, frames, outcome, latency_ms, extra={"fields": fields},
        )  # fmt: skip


def stream(caller: Caller, request_id: str, event: str, frames: int = 0, outcome: str = "ok") -> None:
    if log.isEnabledFor(logging.INFO):
        fields = {"kind": "stream", "key": caller.name, "request_id": request_id, "protocol": "grpc",
                  "event": event, "frames": frames, "outcome": outcome}  # fmt: skip
        log.info(
            "audit kind=stream key=%s request=%s protocol=grpc event=%s frames=%d outcome=%s",
            caller.name, request_id, event, frames, outcome, extra={"fields": fields},
        )  # fmt: skip
