"""A DNS the test controls, for Triton discovery (``service.backends.triton.discovery.Resolver``): never real DNS.
The test changes the records while the gateway runs (from another thread too: each change replaces a list)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence


class Records:
    """``names`` maps a host name to its addresses (A records); a missing name is NXDOMAIN (``socket.gaierror``,
    as getaddrinfo raises it); ``error`` fails every lookup with it; ``gate`` holds lookups until it is set."""

    def __init__(self, names: dict[str, list[str]] | None = None) -> None:
        self.names = dict(names or {})
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.asked: list[str] = []

    async def __call__(self, host: str) -> Sequence[str]:
        self.asked.append(host)
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.names[host])
