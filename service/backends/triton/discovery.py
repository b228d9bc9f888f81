"""Which Triton servers the configured URLs name right now: static ``host:port`` addresses as given, and DNS names
(``dns:///triton-headless.motionlift.svc:8001``) resolved again on every call, e.g. a Kubernetes headless Service
whose A records are the ready Triton pods.

The URL form follows gRPC's naming (``dns:[//authority/]host[:port]``, grpc/doc/naming.md) without the authority:
the system's resolver is used. The port defaults to 8001, Triton's gRPC port. Resolution goes through a
``Resolver``: the default asks ``socket.getaddrinfo`` in the event loop's executor (off the loop); tests inject
one they control. A name that cannot be resolved (an error, a timeout, NXDOMAIN) keeps its last good answer, so a
DNS hiccup never empties the rotation; that is logged once when the name starts failing and once when it resolves
again.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_PORT = 8001  # Triton's gRPC port
PREFIX = "dns:"

# The addresses (A/AAAA records) of a host name; raises OSError (socket.gaierror) when it cannot say.
Resolver = Callable[[str], Awaitable[Sequence[str]]]


async def system_resolver(host: str) -> list[str]:
    """The addresses of ``host`` from the system's resolver (``getaddrinfo``, run in the loop's executor)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class Target:
    """One entry of ``--triton-urls``: ``text`` as given; ``dns`` = resolved again and again (``dns:`` form)."""

    text: str
    host: str
    port: int
    dns: bool

    @classmethod
    def parse(cls, text: str) -> Target:
        """Raises ``ValueError`` naming the entry: a DNS server in the URL, no host, a bad port."""
        if not text.startswith(PREFIX):
            return cls(text, text, 0, False)  # host:port, handed to gRPC as it is (gRPC resolves it once)
        rest = text[len(PREFIX) :]
        if rest.startswith("//"):
            authority, slash, rest = rest[2:].partition("/")
            if authority or not slash:
                raise ValueError(
                    f"Triton URL {text!r}: a DNS server in the URL is not supported (the system's resolver is "
                    "used): write dns:///NAME:PORT"
                )
        host, port = split_host_port(rest, text)
        return cls(text, host, port, True)


def split_host_port(text: str, url: str) -> tuple[str, int]:
    """``name:port``, ``name``, ``[v6]:port`` or ``[v6]`` -> (host, port); ``ValueError`` naming ``url``."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if bracket and (rest.startswith(":") or not rest) else None
    else:
        host, colon, port_text = text.partition(":")
        port = port_text if colon else ""
    if not host or port is None:
        raise ValueError(f"Triton URL {url!r}: expected dns:///NAME:PORT")
    if not port:
        return host, DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"Triton URL {url!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def address(host: str, port: int) -> str:
    """A gRPC target for one server: ``10.0.0.5:8001``, ``[fd00::5]:8001``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Discovery:
    """The servers ``urls`` name now (``servers()``), resolving their DNS names with ``resolver`` within
    ``timeout_s``. Construction parses the URLs (``ValueError`` on a bad one) and does no I/O."""

    def __init__(self, urls: Sequence[str], resolver: Resolver = system_resolver, *, timeout_s: float = 5.0) -> None:
        self.targets = [Target.parse(u) for u in urls]
        self._resolver = resolver
        self._timeout_s = timeout_s
        self._last: dict[Target, list[str]] = {}  # the last good answer of each DNS name
        self._failing: dict[Target, str] = {}  # names whose last resolution failed, with why

    @property
    def dynamic(self) -> bool:
        """Whether any URL is a DNS name (then ``servers()`` is worth calling again)."""
        return any(t.dns for t in self.targets)

    async def servers(self) -> list[str]:
        """Every server the URLs name, in their order and without repeats: static ones as given, each DNS name's
        addresses with its port (its last good answer if it cannot be resolved now, none before a first one)."""
        names = [t for t in self.targets if t.dns]
        answers = await asyncio.gather(*(self._resolve(t) for t in names))
        resolved = dict(zip(names, answers, strict=True))
        found: dict[str, None] = {}
        for t in self.targets:
            for url in resolved[t] if t.dns else [t.text]:
                found.setdefault(url)
        return list(found)

    def describe(self) -> str:
        """The URLs, each DNS name with what it resolved to last (for messages): ``dns:///t:8001 (no addresses:
        [Errno -2] Name or service not known)``."""
        parts = []
        for t in self.targets:
            if not t.dns:
                parts.append(t.text)
                continue
            last = ", ".join(self._last.get(t, [])) or "no addresses"
            why = self._failing.get(t)
            parts.append(f"{t.text} ({last}{': ' + why if why else ''})")
        return ", ".join(parts)

    async def _resolve(self, target: Target) -> list[str]:
        try:
            hosts = await asyncio.wait_for(self._resolver(target.host), self._timeout_s)
        except Exception as exc:  # gaierror, a timeout, or whatever a resolver raises: keep what worked
            why = str(exc) or type(exc).__name__
            if target not in self._failing:
                kept = len(self._last.get(target, []))
                log.warning("cannot resolve Triton URL %s (%s); keeping its last %d servers", target.text, why, kept)
            self._failing[target] = why
            return self._last.get(target, [])
        if self._failing.pop(target, None) is not None:
            log.info("Triton URL %s resolves again", target.text)
        urls = sorted({address(h, target.port) for h in hosts})
        self._last[target] = urls
        return urls
