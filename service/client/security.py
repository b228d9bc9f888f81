"""How the client proves who it is and checks whom it talks to: an API key and TLS.

``api_key`` (default: ``$MOTIONLIFT_API_KEY``) travels as ``Authorization: Bearer <key>`` (REST) and as the
``authorization`` metadata of every gRPC call (the same text). TLS: REST takes it from the URL (``https://``);
gRPC uses it when ``tls`` is set or any certificate is given. ``ca``: the CA bundle to trust (default: the
system's); ``cert`` and ``key``: this client's certificate, for a service that requires one (mutual TLS).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import grpc


@dataclass(frozen=True)
class Security:
    """See the module. ``with_env()`` fills ``api_key`` from ``MOTIONLIFT_API_KEY`` when it is not given."""

    api_key: str | None = None
    tls: bool = False
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def with_env(self) -> Security:
        if self.api_key is not None:
            return self
        key = os.environ.get("MOTIONLIFT_API_KEY") or None
        return Security(key, self.tls, self.ca, self.cert, self.key)

    @property
    def grpc_tls(self) -> bool:
        return self.tls or any(p is not None for p in (self.ca, self.cert, self.key))

    def headers(self) -> dict[str, str]:
        return {} if self.api_key is None else {"authorization": f"Bearer {self.api_key}"}

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return () if self.api_key is None else (("authorization", f"Bearer {self.api_key}"),)

    def verify(self) -> ssl.SSLContext | bool:
        """httpx's ``verify``: a context with the CA and the client certificate when given, else True."""
        if self.ca is None and self.cert is None:
            return True
        context = ssl.create_default_context(cafile=str(self.ca) if self.ca is not None else None)
        if self.cert is not None:
            context.load_cert_chain(str(self.cert), str(self.key) if self.key is not None else None)
        return context

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | None) -> bytes | None:
            return None if path is None else path.read_bytes()

        return grpc.ssl_channel_credentials(read(self.ca), read(self.key), read(self.cert))


PLAIN: Final = Security()  # no key (unless $MOTIONLIFT_API_KEY), no TLS
