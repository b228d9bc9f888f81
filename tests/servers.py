"""Real servers for tests: uvicorn on 127.0.0.1, port 0, in a background thread with its own loop; waiting on
their state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from service.api.server import build_app, uvicorn_server
from service.config import Settings
from service.core.lifter import Lifter


@contextmanager
def serve_rest(app: FastAPI) -> Iterator[str]:
    """Run ``app`` (lifespan included) under plain uvicorn until the block ends; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    with _running(uvicorn.Server(config)) as url:
        yield url


@contextmanager
def serve_service(settings: Settings, lifter: Lifter | None = None) -> Iterator[str]:
    """The service as ``motionlift serve`` runs it (its HTTP protocol: admission at the door, timeouts, limits),
    REST and gRPC on free ports of 127.0.0.1, over ``lifter`` (default: the settings' model); yields the REST
    base URL."""
    with serve_app(settings, lifter) as (url, _):
        yield url


@contextmanager
def serve_app(settings: Settings, lifter: Lifter | None = None) -> Iterator[tuple[str, FastAPI]]:
    """``serve_service``, yielding the app too (``app.state.grpc.port``: the gRPC port); the URL is ``https://``
    when the settings have a TLS certificate."""
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": 0, "grpc_port": 0, "log_level": "warning"})
    app = build_app(settings, lifter)
    with _running(uvicorn_server(app, settings)) as url:
        yield url, app


@contextmanager
def _running(server: uvicorn.Server) -> Iterator[str]:
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"{'https' if server.config.ssl else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def until(condition: Callable[[], bool], what: str, seconds: float = 10.0, *, poll_s: float = 0.005) -> None:
    """Wait for a condition of the server's state (not a timing assertion), checking it every ``poll_s``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll_s)
