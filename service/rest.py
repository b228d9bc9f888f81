"""The REST edge: parse JSON into the core's types, call ``Lifter.lift``, format the answer.

Nothing is validated here beyond JSON types; errors come from the core as ``LiftError`` and are
turned into ``{"error": {...}}`` bodies with the status from the error table (``service.errors``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import LiftError, PayloadTooLarge
from service.inputs import LiftOptions
from service.keypoints import JOINT_NAMES
from service.lifter import Lifter, LiftResult, Track
from service.schemas import ErrorResponse, LiftRequest, LiftResponse

log = logging.getLogger(__name__)

# Answers are written by orjson straight from the float32 arrays (the shortest text that reads back as the
# same float32): for a 243-frame answer 1.8 ms on the event loop, against 30 ms for round + tolist + json.
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def create_app(
    lifter: Lifter,
    *,
    max_body_bytes: int,
    on_start: Callable[[], Awaitable[None]] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """The FastAPI app over ``lifter``. Its lifespan starts the lifter (and ``on_start``, e.g. the gRPC
    server) and closes them in reverse order on shutdown."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await lifter.start()
        try:
            if on_start is not None:
                await on_start()
            yield
        finally:
            if on_stop is not None:
                await on_stop()
            await lifter.close()

    app = FastAPI(
        title="MotionLift",
        summary="Lift 2D human keypoint sequences to 3D joints with MotionBERT's DSTformer.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_middleware(_BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(_RequestId)  # added last = outermost: every answer, 413 and 500 included, has the id
    _add_error_handlers(app)

    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="The model is loaded and warmed up", responses={503: {"model": dict}})
    async def readyz() -> JSONResponse:
        ready = lifter.ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(lifter.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/model", summary="The served model")
    async def model() -> dict[str, Any]:
        info = lifter.info
        return {
            "name": info.name,
            "config": info.config,
            "hyperparams": info.hyperparams,
            "params": info.params,
            "window": info.window,
            "joints": len(JOINT_NAMES),
            "joint_names": list(JOINT_NAMES),
            "precision": info.precision,
            "device": info.device,
            "trained": info.trained,
            "weights": info.weights,
            "card": info.card,
        }

    @app.post(
        "/lift",
        summary="Lift 2D keypoint sequences to 3D joints",
        response_model=LiftResponse,
        responses={
            413: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
            503: {"model": ErrorResponse},
            504: {"model": ErrorResponse},
        },
    )
    async def lift(body: LiftRequest, request: Request) -> Response:
        options = LiftOptions(
            layout=body.format,
            image_size=body.image_size,
            normalization=body.normalization,
            flip=body.flip,
            rootrel=body.rootrel,
            pixels=body.pixels,
            overlap=body.overlap,
        )
        if body.tracks is not None:
            tracks = [
                Track(str(t.id if t.id is not None else i), t.keypoints, f"tracks[{i}].keypoints")
                for i, t in enumerate(body.tracks)
            ]
        else:
            tracks = [Track("0", body.keypoints)]
        result = await _unless_disconnected(request, lifter.lift(tracks, options))
        if result is None:  # nobody to answer; 499 as nginx logs it
            return Response(status_code=499)
        ids = [t.id if t.id is not None else i for i, t in enumerate(body.tracks or [])]
        payload = _format(result, request.state.request_id, lifter, multi=body.tracks is not None, ids=ids)
        return Response(orjson.dumps(payload, option=JSON_OPTIONS), media_type="application/json")

    return app


async def _unless_disconnected(request: Request, work: Coroutine[Any, Any, LiftResult]) -> LiftResult | None:
    """Await ``work`` unless the client disconnects first: then cancel it (which drops its queued windows)
    and return None. Once the body is read, the ASGI ``receive`` returns only when the client disconnects."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
    if not task.done() or task.cancelled():
        log.info("client went away; request %s dropped", request.state.request_id)
        return None
    return task.result()


def _format(result: LiftResult, request_id: str, lifter: Lifter, *, multi: bool, ids: list[Any]) -> dict[str, Any]:
    def track(t: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"joints3d": np.ascontiguousarray(t.joints3d)}
        if t.joints3d_px is not None:
            out["joints3d_px"] = np.ascontiguousarray(t.joints3d_px)
        return out

    timing = result.timing
    payload: dict[str, Any] = {"request_id": request_id}
    if multi:
        payload["frames"] = sum(len(t.joints3d) for t in result.tracks)
        payload["tracks"] = [{"id": ids[i], "frames": len(t.joints3d), **track(t)} for i, t in enumerate(result.tracks)]
    else:
        payload["frames"] = len(result.tracks[0].joints3d)
        payload.update(track(result.tracks[0]))
    info = lifter.info
    payload.update(
        joint_names=list(JOINT_NAMES),
        coordinates=result.coordinates,
        latency_ms={
            "preprocess": round(timing.preprocess_ms, 3),
            "queue": round(timing.queue_ms, 3),
            "inference": round(timing.inference_ms, 3),
            "postprocess": round(timing.postprocess_ms, 3),
            "total": round(timing.total_ms, 3),
        },
        batch_size=timing.batch_size,
        batches=timing.batches,
        windows=timing.windows,
        model={"name": info.name, "config": info.config, "trained": info.trained},
    )
    return payload


def _error(status: int, request: Request, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
    return JSONResponse({"error": {**body, "request_id": request_id}}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LiftError)
    async def lift_error(request: Request, exc: LiftError) -> JSONResponse:
        headers = None
        if exc.retry_after_s is not None:
            headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))}
        return _error(exc.http_status, request, exc.to_dict(), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = _field(first.get("loc", ()))
        message = str(first.get("msg", "invalid request"))
        if first.get("type") == "json_invalid":
            field, message = "body", f"malformed JSON: {first.get('ctx', {}).get('error', message)}"
        return _error(422, request, {"code": "invalid_input", "message": message, "field": field})


def _field(loc: Any) -> str:
    """``("body", "tracks", 1, "keypoints", 4)`` -> ``tracks[1].keypoints[4]``."""
    out = ""
    for part in loc:
        if part == "body" and out == "":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


class _RequestId:
    """Give every request an id (the client's ``x-request-id`` or a new one), echo it as a header, and turn
    any unhandled exception into a 500 carrying the id (and a log line) -- never a traceback to the client.

    Pure ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware costs about a
    millisecond per request, which is most of the server's own time on a small model.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = given[:128] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in %s %s (request %s)", scope.get("method"), scope.get("path"), request_id)
            if started:
                raise
            body = json.dumps({"error": {"code": "internal", "message": "internal error", "request_id": request_id}})
            await send_with_id(
                {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body.encode()})


class _BodyLimit:
    """Answer 413 to a body over ``max_bytes``: at once from Content-Length, or as soon as a streamed
    (chunked) body passes the limit. The body is read here and replayed to the app in one message."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        error = PayloadTooLarge(f"the request body is over the limit of {self.max_bytes} bytes", field="body")
        request_id = str(scope.get("state", {}).get("request_id") or uuid.uuid4().hex)
        body = json.dumps({"error": {**error.to_dict(), "request_id": request_id}}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]  # _RequestId adds the id
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out ``messages`` first, then defers to the real one (for disconnects)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
