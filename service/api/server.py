"""Assembling and running the service: backend -> lifter -> REST app (and gRPC) under one uvicorn loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI

from service.api.grpc.server import RpcServer, follow_readiness
from service.api.rest.app import create_app
from service.api.rest.protocol import limited_http
from service.api.tls import Certificates, certificates
from service.backends.torchscript import cpus
from service.backends.torchscript.backend import TorchScriptBackend
from service.backends.torchscript.cpus import Placement
from service.config import Settings
from service.core.access import ANONYMOUS
from service.core.backend import Backend
from service.core.lifter import Lifter
from service.core.trace import OFF, Tracer
from service.errors import LiftError
from service.model.peek import peek_params

if TYPE_CHECKING:  # tritonclient is imported only when the Triton backend is asked for
    from service.backends.triton.backend import TritonBackend
    from service.backends.triton.discovery import Resolver

log = logging.getLogger(__name__)


def make_backend(settings: Settings, placement: Placement | None = None) -> Backend:
    """The backend ``settings.backend`` names; tritonclient is imported only for ``triton`` (and torch only for
    ``torchscript``), so a gateway image for Triton carries no torch. ``placement``: the model processes' CPUs."""
    if settings.backend == "triton":
        return triton_backend(settings)
    instances, threads = model_layout(settings)
    return TorchScriptBackend(
        settings.model,
        device=settings.device,
        threads=threads,
        instances=instances,
        precision=settings.precision,
        cuda_graphs=settings.cuda_graphs,
        placement=placement,
        batch_windows=settings.max_batch_size,  # warmed up once, so memory at start is memory under load
        batch_frames=settings.max_batch_frames,
    )


def model_layout(settings: Settings) -> tuple[int, int]:
    """``(instances, threads)`` of the model processes: ``settings.instances`` and ``settings.threads``, each 0
    resolved by ``cpus.layout`` from the usable CPUs and the parameter count in the model file (read without
    torch); one instance on CUDA."""
    instances = settings.instances or (1 if settings.device.startswith("cuda") else 0)
    return cpus.layout(cpus.usable(), peek_params(settings.model), instances, settings.threads)


def cpu_placement(settings: Settings) -> Placement | None:
    """Where ``motionlift serve`` puts its model processes and its own threads (``cpus.py``): ``None`` unless
    ``pin_cpus`` and the model runs in this service's processes on the CPU."""
    if not settings.pin_cpus or settings.backend != "torchscript" or settings.device.startswith("cuda"):
        return None
    return cpus.current(*model_layout(settings))


def triton_backend(settings: Settings, resolver: Resolver | None = None) -> TritonBackend:
    """The Triton backend of ``settings``; ``resolver`` replaces the system's DNS resolver (tests control it)."""
    from service.backends.triton.backend import TritonBackend
    from service.backends.triton.discovery import system_resolver

    return TritonBackend(
        settings.triton_urls,
        settings.triton_model,
        settings.triton_version,
        timeout_s=settings.timeout_s,
        resolve_s=settings.triton_resolve_s,
        resolver=resolver or system_resolver,
    )


def build_app(
    settings: Settings, lifter: Lifter | None = None, *, tracer: Tracer = OFF, placement: Placement | None = None
) -> FastAPI:
    """The whole service for ``settings``: REST, and gRPC on ``settings.grpc_port`` (``app.state.grpc``, an
    ``RpcServer`` whose ``port`` is the bound one once started). Nothing starts until the app's lifespan
    runs. ``lifter`` replaces the TorchScript one (tests pass one over a fake backend); ``tracer`` is the new
    lifter's (``lifter.tracer`` otherwise), closed at shutdown; ``placement``: the model's CPUs (``cpu_placement``)."""
    if lifter is None:
        lifter = Lifter(make_backend(settings, placement), settings, tracer=tracer)
    if settings.backend == "triton":
        from service.backends.triton import backend as triton
        from service.backends.triton import metrics as triton_metrics

        if isinstance(lifter.backend, triton.TritonBackend):
            triton_metrics.register(lifter.metrics.registry, lifter.backend)
    rpc = RpcServer(lifter, settings, grace_s=settings.drain_timeout_s)

    follower: list[asyncio.Task[None]] = []
    exporter = MetricsPort(settings, lifter)

    async def start() -> None:
        _announce(settings, lifter)
        await rpc.start()
        exporter.start()
        if settings.backend == "triton":  # a remote model can go and come back: gRPC health must follow it
            follower.append(asyncio.create_task(follow_readiness(lifter, rpc), name="health-follower"))
        # Everything made at startup lives until shutdown: out of the collector's sight, a full collection walks
        # only what requests allocate. Without it the oldest generation's collections, which walk every object
        # of the imported libraries, stopped the loop for tens of milliseconds at a time under load.
        gc.collect()
        gc.freeze()

    draining: list[asyncio.Task[None]] = []

    async def drain() -> None:
        """Shutdown begins (SIGTERM, or the lifespan's end): not ready at once, new work refused, gRPC health
        NOT_SERVING (Check and Watch) and gRPC calls in flight given ``drain_timeout_s``. Idempotent."""
        lifter.drain()
        if not draining:
            draining.append(asyncio.create_task(rpc.stop(), name="grpc-drain"))
        await asyncio.sleep(0)  # let the drain task turn health NOT_SERVING before returning

    async def stop() -> None:
        exporter.stop()
        for task in follower:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await drain()
        await draining[0]
        await asyncio.to_thread(lifter.tracer.close)  # after the last request: its spans go out too

    # The lifespan owns the gRPC server: uvicorn re-raises SIGTERM after serve(), so nothing placed after
    # it would ever run. on_stop turns health NOT_SERVING, drains gRPC, then the lifter closes.
    app = create_app(lifter, on_start=start, on_stop=stop)
    app.state.grpc = rpc
    app.state.drain = drain
    app.state.lifter = lifter
    app.state.metrics_port = exporter
    return app


class MetricsPort:
    """``/metrics`` on a port of its own, without a key (``--metrics-port``: for a Prometheus that holds no key);
    nothing without the setting. ``port`` is the bound one once started."""

    def __init__(self, settings: Settings, lifter: Lifter) -> None:
        self._settings = settings
        self._lifter = lifter
        self._server: Any = None
        self.port: int | None = None

    def start(self) -> None:
        if self._settings.metrics_port is None:
            return
        from prometheus_client import start_http_server

        host = self._settings.host
        self._server, _ = start_http_server(self._settings.metrics_port, host, self._lifter.metrics.registry)
        self.port = int(self._server.server_port)
        log.info("metrics on %s:%d", host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _announce(settings: Settings, lifter: Lifter) -> None:
    info = lifter.info
    log.info(
        "serving %s (%s, %d parameters, window %d, %s on %s)",
        settings.model if settings.backend == "torchscript" else f"{settings.triton_model} on Triton",
        info.config,
        info.params,
        info.window,
        info.precision,
        info.device,
    )
    if not info.trained:
        log.warning(
            "the model has UNTRAINED weights (%s): answers have the right shape but are not real 3D poses",
            info.weights,
        )


class DrainingServer(uvicorn.Server):
    """uvicorn's server that starts the service's drain (``build_app``'s ``drain``) the moment SIGTERM or SIGINT
    arrives, rather than after its HTTP connections have closed: readiness and gRPC health turn at once, while
    uvicorn lets requests in flight finish for ``timeout_graceful_shutdown`` and then cancels them."""

    def __init__(
        self,
        config: uvicorn.Config,
        drain: Callable[[], Coroutine[Any, Any, None]],
        tls: Certificates | None = None,
    ) -> None:
        super().__init__(config)
        self._drain = drain
        self._tls = tls
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reloader: asyncio.Task[None] | None = None

    async def startup(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self._tls is not None and self.config.ssl is not None:  # certificates reloaded when they change
            self._reloader = asyncio.create_task(self._tls.follow(self.config.ssl), name="tls-reload")

    async def shutdown(self, sockets: Any = None) -> None:
        if self._reloader is not None:
            self._reloader.cancel()
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit and self._loop is not None:  # the first signal: a signal handler, so hand over
            self._loop.call_soon_threadsafe(lambda: self._loop and self._loop.create_task(self._drain()))
        super().handle_exit(sig, frame)


def uvicorn_server(app: FastAPI, settings: Settings) -> uvicorn.Server:
    """uvicorn for the app of ``build_app`` with the service's limits: header and body read timeouts, open
    connections, the drain on SIGTERM within ``drain_timeout_s``; no ``server`` header."""
    lifter: Lifter = app.state.lifter

    def admission(authorization: bytes | None, request_id: str) -> LiftError | None:
        caller = ANONYMOUS
        try:
            if lifter.access.enabled:  # a stranger is turned away before admission sees it (401, not 503)
                caller = lifter.access.authenticate(authorization.decode("latin-1") if authorization else None)
            lifter.admit()
        except LiftError as exc:
            return lifter.refused(exc, protocol="rest", admitted=False, caller=caller, request_id=request_id)
        return None

    http = limited_http(
        read_timeout_s=settings.read_timeout_s,
        max_connections=settings.max_connections,
        admission=admission,
        refusal_delay_s=settings.refusal_delay_ms / 1000,
    )
    tls = certificates(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    # JSON lines: uvicorn configures no handlers of its own and its records (access lines too) reach the root
    # logger's JSON formatter (service/telemetry/logs.py); text: uvicorn's own lines, as always.
    logs: dict[str, Any] = {"log_config": None} if settings.log_format == "json" else {}
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        http=http,
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout_s),
        server_header=False,
        **logs,
        **({} if tls is None else tls.uvicorn_options()),
    )
    return DrainingServer(config, app.state.drain, tls)


def run(settings: Settings, tracer: Tracer = OFF) -> None:
    """Serve until SIGINT/SIGTERM. One process, one loop, one model: scale with replicas, not workers. With a
    ``cpu_placement``, this process's threads keep to the CPUs its model processes leave."""
    placement = cpu_placement(settings)
    app = build_app(settings, tracer=tracer, placement=placement)
    if placement is not None:
        cpus.pin_process(placement.gateway)
        owned = [list(instance) for instance in placement.instances]
        log.info("CPUs: the gateway on %s, model processes on %s", list(placement.gateway), owned)
    uvicorn_server(app, settings).run()
