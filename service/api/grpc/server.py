"""The gRPC server of the service: ``motionlift.v1.Lifter`` (``servicer``), standard health checking
(``grpc.health.v1``) and server reflection, on a ``grpc.aio`` server in the process and event loop of the REST
app (the FastAPI lifespan starts and stops it; see ``service.api.server``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service.api.grpc.guard import KeyGuard
from service.api.grpc.servicer import LifterServicer, handlers
from service.api.pb.motionlift.v1 import lift_pb2
from service.api.tls import certificates
from service.config import Settings
from service.core.lifter import Lifter

log = logging.getLogger(__name__)

SERVICE = lift_pb2.DESCRIPTOR.services_by_name["Lifter"].full_name  # "motionlift.v1.Lifter"
GRACE_S = 5.0  # how long calls in flight may finish once shutdown starts (health is NOT_SERVING by then)
CORE_LOGGER = "grpc._cython.cygrpc"
REFUSED_SEND = "ExecuteBatchError raised in core by servicer method"


class EndedCalls(logging.Filter):
    """Demotes grpcio's ERROR for a send the core refused to a WARNING without grpc's internal traceback.

    The core refuses a send only once the call has ended: the client's deadline passed or it cancelled (its
    RST_STREAM came first) or the connection dropped. grpcio itself stays silent when its notice of the end was
    processed before the send, and logs this ERROR with a traceback when it was not, a race a busy host loses
    (a 1 ms deadline lost it on about one call in a hundred beside a CPU hog). Nothing the service could have done
    differently, nothing an on-call engineer should be paged for; still counted, as a warning naming the method.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.getMessage().startswith(REFUSED_SEND):
            method = record.getMessage()[len(REFUSED_SEND) :].strip()
            record.msg, record.args, record.exc_info, record.exc_text = (
                "a call of %s ended before its answer was sent (deadline, cancel or lost connection)",
                (method,),
                None,
                None,
            )
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


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
        self._quiet = EndedCalls()
        self.health: Any = None
        self.port: int | None = None

    async def start(self) -> None:
        access = self._lifter.access
        guard = KeyGuard(access, lambda error: self._lifter.refused(error, protocol="grpc", admitted=False))
        server = grpc.aio.server(
            interceptors=[guard] if access.enabled else [],
            maximum_concurrent_rpcs=self._settings.max_grpc_calls,  # beyond: RESOURCE_EXHAUSTED at once
            options=[
                ("grpc.max_receive_message_length", self._settings.max_body_bytes),
                ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it
            ],
        )
        methods = handlers(LifterServicer(self._lifter))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, methods),))
        server.add_registered_method_handlers(SERVICE, methods)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        services = (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(services, server)
        address = f"{self._settings.host}:{self._settings.grpc_port}"
        tls = certificates(self._settings.tls_cert, self._settings.tls_key, self._settings.tls_client_ca)
        if tls is None:
            self.port = server.add_insecure_port(address)
        else:
            self.port = server.add_secure_port(address, tls.grpc_credentials())
        # Set before serving: the servicer starts with "" SERVING, which must not show before the model is ready.
        serving = health_pb2.HealthCheckResponse.SERVING
        status = serving if self._lifter.ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE):  # "" = the whole server, as load balancers ask
            await self.health.set(name, status)
        logging.getLogger(CORE_LOGGER).addFilter(self._quiet)  # removed by stop()
        await server.start()
        self._server = server
        log.info("gRPC on %s:%d%s", self._settings.host, self.port, "" if tls is None else " (TLS)")

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        await self.health.enter_graceful_shutdown()  # NOT_SERVING before anything stops
        await server.stop(self._grace_s)
        logging.getLogger(CORE_LOGGER).removeFilter(self._quiet)


async def follow_readiness(lifter: Lifter, rpc: RpcServer, period_s: float = 0.25) -> None:
    """Mirror ``lifter.ready`` into gRPC health (``""`` and the Lifter service) until cancelled, as /readyz
    follows it. Once shutdown has begun the health servicer ignores updates, so this never revives it."""
    last: bool | None = None
    while True:
        ready = lifter.ready
        if ready != last:
            status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in ("", SERVICE):
                await rpc.health.set(name, status)
            last = ready
        await asyncio.sleep(period_s)
