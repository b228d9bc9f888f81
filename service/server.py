"""Assembling and running the service: backend -> lifter -> REST app (and gRPC) under one uvicorn loop."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from service.backends.torchscript import TorchScriptBackend
from service.config import Settings
from service.lifter import Lifter
from service.rest import create_app
from service.rpc import RpcServer

log = logging.getLogger(__name__)


def build_app(settings: Settings, lifter: Lifter | None = None) -> FastAPI:
    """The whole service for ``settings``: REST, and gRPC on ``settings.grpc_port`` (``app.state.grpc``, an
    ``RpcServer`` whose ``port`` is the bound one once started). Nothing starts until the app's lifespan
    runs. ``lifter`` replaces the TorchScript one (tests pass one over a fake backend)."""
    if lifter is None:
        backend = TorchScriptBackend(settings.model, device=settings.device, threads=settings.threads)
        lifter = Lifter(backend, settings)
    rpc = RpcServer(lifter, settings)

    async def announce() -> None:
        info = lifter.info
        log.info(
            "serving %s (%s, %d parameters, window %d, %s on %s)",
            settings.model,
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

    async def start() -> None:
        await announce()
        await rpc.start()

    # The lifespan owns the gRPC server: uvicorn re-raises SIGTERM after serve(), so nothing placed after
    # it would ever run. on_stop turns health NOT_SERVING, drains gRPC, then the lifter closes.
    app = create_app(lifter, max_body_bytes=settings.max_body_bytes, on_start=start, on_stop=rpc.stop)
    app.state.grpc = rpc
    return app


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM. One process, one loop, one model: scale with replicas, not workers."""
    uvicorn.run(build_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)
