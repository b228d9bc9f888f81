"""The audit log: one line per request on the ``motionlift.audit`` logger (INFO), whatever its outcome:

``audit key=<name> request=<id> protocol=rest|grpc frames=<n> outcome=<ok|error code> latency_ms=<ms>``

``key`` is the API key's name (``-`` without keys or before a key was checked), never the key itself. Streams get
a line when they open and one when they end (``kind=stream``, with the frames received). Silence it, or send it
elsewhere, with the logging configuration of that logger. Each record also carries its values as ``fields``
(``request_id`` for ``request``), which ``--log-format json`` writes as JSON fields of the line.

Refusals (requests turned away before any model work: a full queue, a missing key, a body that does not parse)
are logged one by one up to ``Refusals.per_s`` a second; beyond that they are counted, and one line per key,
protocol and outcome says how many were not logged one by one:

``audit refusals-not-logged key=<name> protocol=rest|grpc outcome=<code> count=<n> seconds=1``

At 10x overload the service refuses thousands of requests a second; a line each (on the event loop, the default
level being INFO) took gRPC refusals from 47-51 ms to 63.5 ms at p99 and wrote 59,574 lines in 80 s
(``motionlift bench overload --serve-flags="--max-queued-windows 16 --log-level info"``). ``/metrics`` still counts
every request by outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

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


class Refusals:
    """Audit lines of refusals, at most ``per_s`` in each second of ``clock``; the rest counted by (key, protocol,
    outcome) and summed up in one line each when their second is over (on the running loop a second later, or at
    the next refusal when there is no loop). Not thread-safe: call it from the event loop's thread."""

    def __init__(self, per_s: int = 20, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_s = per_s
        self._clock = clock
        self._second: int | None = None
        self._logged = 0
        self._dropped: Counter[tuple[str, str, str]] = Counter()
        self._flushing = False

    def refused(self, caller: Caller, request_id: str, protocol: str, outcome: str) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        second = int(self._clock())
        if second != self._second:
            self.flush()
            self._second, self._logged = second, 0
        if self._logged < self.per_s:
            self._logged += 1
            request(caller, request_id, protocol, 0, outcome, 0.0)
            return
        self._dropped[(caller.name, protocol, outcome)] += 1
        if not self._flushing:
            try:
                asyncio.get_running_loop().call_later(1.0, self.flush)
                self._flushing = True
            except RuntimeError:  # no loop here: the next refusal or ``flush`` says it
                pass

    def flush(self) -> None:
        """One line per (key, protocol, outcome) not logged one by one since the last flush."""
        self._flushing = False
        for (key, protocol, outcome), count in sorted(self._dropped.items()):
            fields = {"kind": "refusals-not-logged", "key": key, "protocol": protocol, "outcome": outcome,
                      "count": count}  # fmt: skip
            log.info(
                "audit refusals-not-logged key=%s protocol=%s outcome=%s count=%d seconds=1",
                key, protocol, outcome, count, extra={"fields": fields},
            )  # fmt: skip
        self._dropped.clear()
