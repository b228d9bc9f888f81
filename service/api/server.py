"""Assembling and running the service: backend -> lifter -> REST app (and gRPC) under one uvicorn loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn
from fastapi import FastAPI

from service.api.grpc.server import RpcServer, follow_readiness
from service.api.rest.app import create_app
from service.backends.torchscript.backend import TorchScriptBackend
from service.config import Settings
from service.core.backend import Backend
from service.core.lifter import Lifter

log = logging.getLogger(__name__)


def make_backend(settings: Settings) -> Backend:
    """The backend ``settings.backend`` names; tritonclient is imported only for ``triton`` (and torch only for
    ``torchscript``), so a gateway image for Triton carries no torch."""
    if settings.backend == "triton":
        from service.backends.triton.backend import TritonBackend

        return TritonBackend(
            settings.triton_urls, settings.triton_model, settings.triton_version, timeout_s=settings.timeout_s
        )
    return TorchScriptBackend(
        settings.model,
        device=settings.device,
        threads=settings.threads,
        precision=settings.precision,
        cuda_graphs=settings.cuda_graphs,
    )


def build_app(settings: Settings, lifter: Lifter | None = None) -> FastAPI:
    """The whole service for ``settings``: REST, and gRPC on ``settings.grpc_port`` (``app.state.grpc``, an
    ``RpcServer`` whose ``port`` is the bound one once started). Nothing starts until the app's lifespan
    runs. ``lifter`` replaces the TorchScript one (tests pass one over a fake backend)."""
    if lifter is None:
        lifter = Lifter(make_backend(settings), settings)
    if settings.backend == "triton":
        from service.backends.triton import backend as triton
        from service.backends.triton import metrics as triton_metrics

        if isinstance(lifter.backend, triton.TritonBackend):
            triton_metrics.register(lifter.metrics.registry, lifter.backend)
    rpc = RpcServer(lifter, settings)

    async def announce() -> None:
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

    follower: list[asyncio.Task[None]] = []

    async def start() -> None:
        await announce()
        await rpc.start()
        if settings.backend == "triton":  # a remote model can go and come back: gRPC health must follow it
            follower.append(asyncio.create_task(follow_readiness(lifter, rpc), name="health-follower"))

    async def stop() -> None:
        for task in follower:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await rpc.stop()

    # The lifespan owns the gRPC server: uvicorn re-raises SIGTERM after serve(), so nothing placed after
    # it would ever run. on_stop turns health NOT_SERVING, drains gRPC, then the lifter closes.
    app = create_app(lifter, max_body_bytes=settings.max_body_bytes, on_start=start, on_stop=stop)
    app.state.grpc = rpc
    return app


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM. One process, one loop, one model: scale with replicas, not workers."""
    uvicorn.run(build_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)
