"""The gRPC edge: ``motionlift.v1.Lifter`` (unary ``Lift``, bidirectional ``LiftStream``), standard health
checking (``grpc.health.v1``) and server reflection, on a ``grpc.aio`` server in the process and event loop
of the REST app (the FastAPI lifespan starts and stops it; see ``service.api.server``).

Errors: a ``LiftError`` from the core ends the call with ``grpc.StatusCode[error.grpc_code]`` (the one
error table, ``service.errors``) and the details ``"<field>: <message>"``; trailing metadata carries
``motionlift-field``, ``x-request-id`` and, when retrying later may help, ``retry-after-s``. Anything else
is logged with the request id and answered INTERNAL naming that id. Deadlines: the time a call has left is
passed to the core as ``timeout_s``, which drops the call's queued windows when it runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service.api.grpc import wire
from service.api.pb.motionlift.v1 import lift_pb2, lift_pb2_grpc
from service.config import Settings
from service.core.lifter import Lifter
from service.core.results import coordinates
from service.core.stream_config import resolve
from service.core.streams import StreamSession
from service.errors import LiftError

log = logging.getLogger(__name__)

SERVICE = lift_pb2.DESCRIPTOR.services_by_name["Lifter"].full_name  # "motionlift.v1.Lifter"
GRACE_S = 5.0  # how long calls in flight may finish once shutdown starts (health is NOT_SERVING by then)


def _request_id(context: Any) -> str:
    """The caller's ``x-request-id`` metadata, or a new id."""
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and value:
            return str(value)
    return uuid.uuid4().hex


async def _abort(context: Any, exc: BaseException, request_id: str, method: str) -> NoReturn:
    """End the call for ``exc`` (raises ``grpc.aio.AbortError``, as ``context.abort`` always does)."""
    metadata: list[tuple[str, str]] = [("x-request-id", request_id)]
    if isinstance(exc, LiftError):
        code = grpc.StatusCode[exc.grpc_code]
        details = f"{exc.field}: {exc.message}" if exc.field else exc.message
        if exc.field:
            metadata.append(("motionlift-field", exc.field))
        if exc.retry_after_s is not None:
            metadata.append(("retry-after-s", f"{exc.retry_after_s:g}"))
        if code == grpc.StatusCode.INTERNAL:
            log.error("%s failed (request %s): %s", method, request_id, exc.message)
            details = f"{details} (request {request_id})"
    else:  # never a traceback to the client: the request id finds the log line
        log.error("unhandled error in %s (request %s)", method, request_id, exc_info=exc)
        code, details = grpc.StatusCode.INTERNAL, f"internal error (request {request_id})"
    await context.abort(code, details, tuple(metadata))
    raise AssertionError("context.abort returned")  # it always raises; this tells the type checker


class LifterServicer(lift_pb2_grpc.LifterServicer):
    """``motionlift.v1.Lifter`` over a started ``Lifter``."""

    def __init__(self, lifter: Lifter, settings: Settings) -> None:
        self._lifter = lifter
        self._settings = settings

    async def Lift(self, request: Any, context: Any) -> Any:
        """Decode, ``Lifter.lift`` with the call's remaining time, encode; errors as the module says."""
        request_id = _request_id(context)
        try:
            tracks, options = wire.lift_input(request)
            result = await self._lifter.lift(tracks, options, timeout_s=context.time_remaining())
            return wire.lift_response(result, request_id, self._lifter.info)
        except Exception as exc:
            await _abort(context, exc, request_id, "Lift")

    async def LiftStream(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        """Config first, then frames; answers as ``service.core.streams`` describes. The client's half-close
        flushes the remaining frames and ends the call with OK; a bad frame ends it INVALID_ARGUMENT."""
        request_id = _request_id(context)
        session: StreamSession | None = None
        reader: asyncio.Task[None] | None = None
        try:
            first = await anext(aiter(requests), None)
            if first is None:
                return
            plan = resolve(wire.stream_config(first), model_window=self._lifter.info.window)
            session = StreamSession(
                self._lifter, plan, max_tracks=self._settings.max_tracks, timeout_s=context.time_remaining
            )
            yield wire.stream_started(plan, coordinates(plan.options), self._lifter.info)
            reader = asyncio.create_task(self._read(requests, session, request_id), name="stream reader")
            async for answer in session.answers():
                yield wire.frame_answer(answer)
        except Exception as exc:
            await _abort(context, exc, request_id, "LiftStream")
        finally:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            if session is not None:
                await session.close()

    @staticmethod
    async def _read(requests: AsyncIterator[Any], session: StreamSession, request_id: str) -> None:
        # Reads as fast as frames come, so they wait in the session's bounded state, not in gRPC's buffers.
        try:
            async for request in requests:
                session.push(wire.stream_frames(request))
            await session.finish()
        except LiftError as exc:
            await session.fail(exc)
        except Exception:
            log.exception("unhandled error reading LiftStream (request %s)", request_id)
            await session.fail(LiftError("internal error"))  # INTERNAL; _abort adds the request id


class RpcServer:
    """The gRPC server of one service process. Cheap to construct; ``start()`` binds and serves,
    ``stop()`` turns health NOT_SERVING first, then lets calls in flight finish for ``grace_s``.

    ``port`` is the bound port once started (``settings.grpc_port`` 0 picks a free one). Raises
    ``RuntimeError`` from ``start()`` when the address cannot be bound.
    """

    def __init__(self, lifter: Lifter, settings: Settings, *, grace_s: float = GRACE_S) -> None:
        self._lifter = lifter
        self._settings = settings
        self._grace_s = grace_s
        self._server: Any = None
        self.health: Any = None
        self.port: int | None = None

    async def start(self) -> None:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self._settings.max_body_bytes),
                ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it
            ]
        )
        servicer = LifterServicer(self._lifter, self._settings)
        lift_pb2_grpc.add_LifterServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]  # generated
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        services = (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(services, server)
        address = f"{self._settings.host}:{self._settings.grpc_port}"
        self.port = server.add_insecure_port(address)
        # Set before serving: the servicer starts with "" SERVING, which must not show before the model is ready.
        serving = health_pb2.HealthCheckResponse.SERVING
        status = serving if self._lifter.ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE):  # "" = the whole server, as load balancers ask
            await self.health.set(name, status)
        await server.start()
        self._server = server
        log.info("gRPC on %s:%d", self._settings.host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        await self.health.enter_graceful_shutdown()  # NOT_SERVING before anything stops
        await server.stop(self._grace_s)
