"""The REST app: FastAPI with its lifespan, middleware, error handlers, OpenAPI document (``openapi``) and offline
``/docs``; routes in ``service.api.rest.routes``.

Errors come from the core as ``LiftError`` and are turned into ``{"error": {...}}`` bodies with the status from
the error table (``service.errors``); anything else becomes a 500 with the request id (``RequestId``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.rest import openapi
from service.api.rest.auth import KeyCheck
from service.api.rest.middleware import BodyLimit, RequestId, Traced
from service.api.rest.reader import BodyReader
from service.api.rest.routes import add_lift, add_probes
from service.api.rest.upload import add_upload
from service.core.lifter import Lifter
from service.errors import LiftError, MethodNotAllowed, NotFound

log = logging.getLogger(__name__)

TITLE = "MotionLift"
SUMMARY = "Lift 2D human keypoint sequences to 3D joints with MotionBERT's DSTformer."
VERSION = "0.1.0"
TRACED = ("/lift", "/lift/file")  # the routes that reach the core: one trace per request (probes are not traced)


def create_app(
    lifter: Lifter,
    *,
    on_start: Callable[[], Awaitable[None]] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """The FastAPI app over ``lifter`` (its limits are ``lifter.settings``'). Its lifespan starts the lifter, the
    body readers (and ``on_start``, e.g. the gRPC server) and closes them in reverse order on shutdown."""
    settings = lifter.settings
    reader = BodyReader(settings.parse_workers, lifter.capacity)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await lifter.start()
        await reader.start()
        try:
            if on_start is not None:
                await on_start()
            yield
        finally:
            if on_stop is not None:
                await on_stop()
            await reader.close()
            await lifter.close()

    # /docs is Swagger UI served from fastapi-offline's copy of its assets (no CDN: the docs work offline), without
    # the validator badge (Swagger UI would fetch it from validator.swagger.io); /docs is the one documentation page
    # (README "Endpoints"), so no /redoc.
    # --docs off: plain FastAPI without the document, the page or the assets (fastapi-offline needs a document).
    docs: dict[str, Any] = {"swagger_ui_parameters": {"validatorUrl": None}} if settings.docs else {}
    kind = FastAPIOffline if settings.docs else FastAPI
    app = kind(
        title=TITLE,
        summary=SUMMARY,
        version=VERSION,
        lifespan=lifespan,
        docs_url="/docs" if settings.docs else None,
        openapi_url="/openapi.json" if settings.docs else None,
        redoc_url=None,
        **docs,
    )
    _add_middleware(app, lifter)
    _add_error_handlers(app)
    add_probes(app, lifter)
    add_lift(app, lifter, reader)
    add_upload(app, lifter, reader)
    add_viewer(app)
    if settings.docs:
        openapi.install(app, lifter)
    return app


def add_viewer(app: FastAPI) -> None:
    """``GET /viewer``: the web viewer (``service.viewer``), static files served by the service itself (no CDN).
    The page holds no data: it calls ``POST /lift/file`` with the key the user gives it."""
    from service.viewer import STATIC

    @app.get("/viewer", include_in_schema=False)
    async def viewer() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/viewer/static", StaticFiles(directory=STATIC), name="viewer-static")


def _add_middleware(app: FastAPI, lifter: Lifter) -> None:
    """Inside out: the body's limits, the key check, the lifts' spans when tracing is on (a refused key is traced
    too), request ids (outside the key check: every answer, 401, 413 and 500 included, has one), then CORS when
    origins are allowed (outermost: a browser's preflight carries no key)."""
    settings = lifter.settings
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, read_timeout_s=settings.read_timeout_s)
    app.add_middleware(
        KeyCheck, access=lifter.access, count=lambda error: lifter.refused(error, protocol="rest", admitted=False)
    )
    if lifter.tracer.on:
        app.add_middleware(Traced, tracer=lifter.tracer, paths=TRACED)
    app.add_middleware(RequestId)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id", "retry-after"],
            max_age=600,
        )


def _error(status: int, request: Request, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
    return JSONResponse({"error": {**body, "request_id": request_id}}, status_code=status, headers=headers)


# Starlette's own answers (an unknown route, a method the route does not take) in the service's envelope.
HTTP_ERRORS: dict[int, type[LiftError]] = {404: NotFound, 405: MethodNotAllowed}


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LiftError)
    async def lift_error(request: Request, exc: LiftError) -> JSONResponse:
        headers: dict[str, str] = {}
        if exc.retry_after_s is not None:
            headers["Retry-After"] = exc.retry_after()
        if exc.http_status in (408, 413, 415):  # the body may be unread: this connection cannot carry another
            headers["Connection"] = "close"
        if exc.http_status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="motionlift"'
        if exc.http_status == 500:  # a fault; 503 and 504 are the service working as documented, under load
            request_id = getattr(request.state, "request_id", "?")
            log.error("%s %s failed (request %s): %s", request.method, request.url.path, request_id, exc.message)
        return _error(exc.http_status, request, exc.to_dict(), headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        cls = HTTP_ERRORS.get(exc.status_code)
        message = str(exc.detail) if cls is None else f"{exc.detail.lower()}: {request.method} {request.url.path}"
        body = {"code": cls.code if cls else "http_error", "message": message}
        return _error(exc.status_code, request, body, dict(exc.headers or {}))
