"""TLS for both edges from the same files (``--tls-cert``, ``--tls-key``, ``--tls-client-ca``), reloaded when they
change, without a restart.

REST: uvicorn builds its ``ssl.SSLContext`` from the files; ``follow`` loads the new chain into that same context
(new handshakes use it, open connections keep theirs). gRPC: ``grpc_credentials`` are grpc's dynamic server
credentials, whose fetcher grpc calls at each new handshake; it gives grpc a new configuration when the files
changed. A new pair is loaded only once it is whole and matches (a certificate replaced before its key would
fail ``load_cert_chain``): until then the old one stays in force. With ``client_ca`` every client must present a
certificate that CA signed, unexpired (mutual TLS); a client without one, or with another, fails the handshake.
New CA files are added to the trusted set on REST (an ``SSLContext`` cannot forget one) and replace it on gRPC.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger(__name__)

Stamp = tuple[tuple[float, int], ...]


@dataclass(frozen=True)
class Certificates:
    """The service's certificate chain and key, and the CA of the clients it accepts (None: any client)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def files(self) -> tuple[Path, ...]:
        return (self.cert, self.key) if self.client_ca is None else (self.cert, self.key, self.client_ca)

    def stamp(self) -> Stamp:
        """What tells a change: each file's modification time and size (-1 while one is missing)."""
        out = []
        for path in self.files():
            try:
                stat = path.stat()
                out.append((stat.st_mtime, stat.st_size))
            except FileNotFoundError:
                out.append((0.0, -1))
        return tuple(out)

    def check(self) -> None:
        """``ssl.SSLError`` / ``OSError`` unless the files are a matching chain and key (and a readable CA)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca is not None:
            context.load_verify_locations(self.client_ca)

    def uvicorn_options(self) -> dict[str, Any]:
        """The ``uvicorn.Config`` arguments for these files."""
        return {
            "ssl_certfile": str(self.cert),
            "ssl_keyfile": str(self.key),
            "ssl_ca_certs": None if self.client_ca is None else str(self.client_ca),
            "ssl_cert_reqs": ssl.CERT_NONE if self.client_ca is None else ssl.CERT_REQUIRED,
        }

    async def follow(self, context: ssl.SSLContext, every_s: float = 2.0) -> None:
        """Load changed files into uvicorn's ``context`` until cancelled."""
        seen = self.stamp()
        while True:
            await asyncio.sleep(every_s)
            now = self.stamp()
            if now == seen:
                continue
            try:
                self.check()
                context.load_cert_chain(self.cert, self.key)
                if self.client_ca is not None:
                    context.load_verify_locations(self.client_ca)
            except (OSError, ssl.SSLError) as exc:
                log.warning("TLS files changed but cannot be loaded yet (%s); keeping the current ones", exc)
                continue
            seen = now
            log.info("REST TLS certificate reloaded from %s", self.cert)

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Dynamic server credentials that pick up changed files at the next handshake."""
        seen = [self.stamp()]

        def configuration() -> Any:
            ca = None if self.client_ca is None else self.client_ca.read_bytes()
            pair = [(self.key.read_bytes(), self.cert.read_bytes())]
            return grpc.ssl_server_certificate_configuration(pair, root_certificates=ca)

        def fetch() -> Any:
            now = self.stamp()
            if now == seen[0]:
                return None
            try:
                self.check()
                fresh = configuration()
            except (OSError, ssl.SSLError) as exc:
                log.warning("TLS files changed but cannot be loaded yet (%s); keeping the current ones", exc)
                return None
            seen[0] = now
            log.info("gRPC TLS certificate reloaded from %s", self.cert)
            return fresh

        return grpc.dynamic_ssl_server_credentials(
            configuration(), fetch, require_client_authentication=self.client_ca is not None
        )


def certificates(cert: Path | None, key: Path | None, client_ca: Path | None) -> Certificates | None:
    """The settings' files as ``Certificates``; None without a certificate (plaintext)."""
    if cert is None or key is None:
        return None
    return Certificates(cert, key, client_ca)
