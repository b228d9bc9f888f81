"""One ``lift`` per transport: REST over httpx and gRPC over grpcio, each sync and asyncio.

Every failure is a ``service.errors.LiftError`` subclass: the service's own errors mapped back
(``service.client.errors``); a service that cannot be reached is ``Unavailable``; no answer within the
timeout is ``DeadlineExceeded``. A transport owns its connection (httpx pool, gRPC channel): ``close()`` it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import grpc
import httpx

from service.api.pb.motionlift.v1 import lift_pb2_grpc
from service.client import wire
from service.client.errors import from_grpc, from_http
from service.client.security import PLAIN, Security
from service.client.types import LiftAnswer, LiftCall
from service.errors import DeadlineExceeded, LiftError, Unavailable

# Answers of long sequences outgrow grpc's 4 MiB default; the service bounds what it accepts itself.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
JSON = {"content-type": "application/json"}


def _headers(request_id: str | None, security: Security) -> dict[str, str]:
    headers = {**JSON, **security.headers()}
    return headers if request_id is None else {**headers, "x-request-id": request_id}


def metadata(request_id: str | None, security: Security = PLAIN) -> tuple[tuple[str, str], ...]:
    return security.metadata() + (() if request_id is None else (("x-request-id", request_id),))


def channel_of(target: str, security: Security, *, aio: bool) -> Any:
    """A channel to ``target``: TLS when ``security`` says so (``security.py``), else plaintext."""
    if security.grpc_tls:
        credentials = security.grpc_credentials()
        if aio:
            return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        return grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
    if aio:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)


def _rest_answer(response: httpx.Response, started: float) -> LiftAnswer:
    elapsed = 1000 * (time.perf_counter() - started)
    if response.status_code != 200:
        raise from_http(response.status_code, response.content, response.headers)
    try:
        return wire.rest_answer(json.loads(response.content), elapsed)
    except (ValueError, KeyError, TypeError) as exc:
        raise LiftError(f"unexpected answer from the service: {exc!r}") from None


def _transport_error(url: str, exc: httpx.HTTPError, timeout_s: float) -> LiftError:
    if isinstance(exc, httpx.TimeoutException):
        return DeadlineExceeded(f"no answer from {url} within {timeout_s:g} s")
    return Unavailable(f"cannot reach {url}: {exc}")


class RestTransport:
    """``POST {url}/lift`` with a keep-alive ``httpx.Client``."""

    def __init__(self, url: str, *, timeout_s: float, security: Security = PLAIN) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.security = security
        self._http = httpx.Client(timeout=timeout_s, verify=security.verify())

    def lift(self, call: LiftCall, *, timeout_s: float | None = None, request_id: str | None = None) -> LiftAnswer:
        timeout = timeout_s or self.timeout_s
        started = time.perf_counter()
        try:
            response = self._http.post(
                f"{self.url}/lift",
                content=wire.rest_body(call),
                headers=_headers(request_id, self.security),
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            raise _transport_error(self.url, exc, timeout) from exc
        return _rest_answer(response, started)

    def close(self) -> None:
        self._http.close()


class AsyncRestTransport:
    """``POST {url}/lift`` with a keep-alive ``httpx.AsyncClient``."""

    def __init__(self, url: str, *, timeout_s: float, security: Security = PLAIN) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.security = security
        self._http = httpx.AsyncClient(timeout=timeout_s, verify=security.verify())

    async def lift(
        self, call: LiftCall, *, timeout_s: float | None = None, request_id: str | None = None
    ) -> LiftAnswer:
        timeout = timeout_s or self.timeout_s
        started = time.perf_counter()
        try:
            response = await self._http.post(
                f"{self.url}/lift",
                content=wire.rest_body(call),
                headers=_headers(request_id, self.security),
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            raise _transport_error(self.url, exc, timeout) from exc
        return _rest_answer(response, started)

    async def close(self) -> None:
        await self._http.aclose()


def rpc_error(exc: grpc.RpcError) -> LiftError:
    """A failed call (``grpc.RpcError`` / ``grpc.aio.AioRpcError``) as the service's typed error."""
    call: Any = exc
    return from_grpc(call.code().name, call.details(), call.trailing_metadata())


class GrpcTransport:
    """``motionlift.v1.Lifter`` over a sync ``grpc`` channel to ``target`` (``host:port``; TLS as ``security``)."""

    def __init__(self, target: str, *, timeout_s: float, security: Security = PLAIN) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.security = security
        self.channel = channel_of(target, security, aio=False)
        self.stub: Any = lift_pb2_grpc.LifterStub(self.channel)  # type: ignore[no-untyped-call]  # generated

    def lift(self, call: LiftCall, *, timeout_s: float | None = None, request_id: str | None = None) -> LiftAnswer:
        request = wire.lift_request(call)
        started = time.perf_counter()
        try:
            response = self.stub.Lift(
                request, timeout=timeout_s or self.timeout_s, metadata=metadata(request_id, self.security)
            )
        except grpc.RpcError as exc:
            raise rpc_error(exc) from None
        return wire.lift_answer(response, 1000 * (time.perf_counter() - started))

    def close(self) -> None:
        self.channel.close()


class AsyncGrpcTransport:
    """``motionlift.v1.Lifter`` over a ``grpc.aio`` channel (created in the running event loop)."""

    def __init__(self, target: str, *, timeout_s: float, security: Security = PLAIN) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.security = security
        self.channel = channel_of(target, security, aio=True)
        self.stub: Any = lift_pb2_grpc.LifterStub(self.channel)  # type: ignore[no-untyped-call]  # generated

    async def lift(
        self, call: LiftCall, *, timeout_s: float | None = None, request_id: str | None = None
    ) -> LiftAnswer:
        request = wire.lift_request(call)
        started = time.perf_counter()
        try:
            response = await self.stub.Lift(
                request, timeout=timeout_s or self.timeout_s, metadata=metadata(request_id, self.security)
            )
        except grpc.RpcError as exc:
            raise rpc_error(exc) from None
        return wire.lift_answer(response, 1000 * (time.perf_counter() - started))

    async def close(self) -> None:
        await self.channel.close()
