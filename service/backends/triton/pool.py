"""The Triton servers in rotation: a gRPC client per server, whether each has the model ready, and which one runs
the next batch (the ready server with the fewest calls in flight; ties rotate, so idle servers share the load).

Servers join and leave as the configured URLs resolve (``update``). A server that joins gets its client at once but
is picked only after a readiness check found the model ready there. A server that leaves is never picked again;
its calls in flight go on, and its client is closed once they have finished (``close_idle``), so they complete (or
fail and are retried elsewhere by the backend) rather than being cut off by the gateway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# gRPC's reconnect backoff grows to 120 s by default (gRPC doc "connection-backoff"): capped, a restarted or newly
# started Triton at a known address is connected within about a second of listening.
MAX_BACKOFF_MS = 1000
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", MAX_BACKOFF_MS),
]


def connect(url: str) -> Any:
    """A tritonclient gRPC aio client for one server (it connects lazily, and reconnects by itself)."""
    import tritonclient.grpc.aio as triton_aio

    return triton_aio.InferenceServerClient(url, channel_args=CHANNEL_OPTIONS)


@dataclass
class Endpoint:
    """One Triton server: ``ready`` = the model answered ready at the last check and no call failed since."""

    url: str
    client: Any
    ready: bool = False
    inflight: int = 0
    failure: str | None = None  # why the server cannot serve the model (its repository index), when it says


class Pool:
    """The servers of the rotation; ``connect(url)`` makes a server's client (cheap: gRPC connects lazily)."""

    def __init__(self, connect: Callable[[str], Any]) -> None:
        self._connect = connect
        self.endpoints: list[Endpoint] = []
        self._leaving: list[Endpoint] = []
        self._turn = 0

    @property
    def ready(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.ready]

    def update(self, urls: Sequence[str]) -> tuple[list[str], list[str]]:
        """Make the rotation the servers ``urls``; returns the URLs that joined and those that left."""
        wanted = dict.fromkeys(urls)
        known = {e.url for e in self.endpoints}
        left = [e for e in self.endpoints if e.url not in wanted]
        for e in left:
            e.ready = False
        joined = [u for u in wanted if u not in known]
        self.endpoints = [e for e in self.endpoints if e.url in wanted] + [
            Endpoint(u, self._connect(u)) for u in joined
        ]
        self._leaving += left
        return joined, [e.url for e in left]

    def pick(self, tried: set[str]) -> Endpoint | None:
        """The ready server with the fewest calls in flight, not in ``tried``; None when there is none."""
        candidates = [e for e in self.endpoints if e.ready and e.url not in tried]
        if not candidates:
            return None
        self._turn += 1  # rotate the tie-break so idle servers share the load
        n = len(candidates)
        return min(candidates[self._turn % n :] + candidates[: self._turn % n], key=lambda e: e.inflight)

    async def close_idle(self) -> None:
        """Close the clients of servers that left and have no call in flight any more."""
        idle = [e for e in self._leaving if e.inflight == 0]
        self._leaving = [e for e in self._leaving if e.inflight > 0]
        for e in idle:
            await _close(e)

    async def close(self) -> None:
        """Close every client; the pool is empty afterwards."""
        everything, self.endpoints, self._leaving = self.endpoints + self._leaving, [], []
        for e in everything:
            await _close(e)


async def _close(endpoint: Endpoint) -> None:
    endpoint.ready = False
    with contextlib.suppress(Exception):  # a client that cannot close cleanly is gone all the same
        await endpoint.client.close()
