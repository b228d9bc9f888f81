"""REST routes: the probes (``/healthz``, ``/readyz``, ``/metrics``, ``/v1/model``) and ``POST /lift``.

``/lift`` reads its body itself (``body.parse``: orjson and numpy, in a worker thread when large), calls
``Lifter.lift`` and writes the answer with orjson straight from the float32 arrays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Final

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect

from service.api.rest.motion import bvh_answer, bvh_parameters, wants_bvh
from service.api.rest.reader import BodyReader
from service.api.rest.schemas import ErrorResponse, Health, LiftResponse, ModelDescription, Readiness
from service.core.access import ANONYMOUS, Caller
from service.core.keypoints import JOINT_NAMES
from service.core.lifter import Lifter
from service.core.results import LiftResult, TrackResult
from service.errors import LiftError, UnsupportedMediaType

log = logging.getLogger(__name__)

# Answers are written by orjson straight from the float32 arrays (the shortest text that reads back as the
# same float32): for a 243-frame answer 1.8 ms on the event loop, against 30 ms for round + tolist + json.
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
Responses = dict[int | str, dict[str, Any]]


def errors(described: dict[int, str]) -> Responses:
    """Error answers in the envelope (``ErrorResponse``) by status, for a route's OpenAPI ``responses``."""
    return {status: {"model": ErrorResponse, "description": text} for status, text in described.items()}


# What every route may answer besides its own: an unexpected error, and a connection over --max-connections
# (answered by the HTTP protocol itself, service.api.rest.protocol).
INTERNAL = "an unexpected error; logged with the request id"
FULL = "too many open connections (--max-connections), with Retry-After"
ANY: Final[Responses] = errors({500: INTERNAL, 503: FULL})
HEALTHZ: Final[Responses] = {200: {"model": Health, "description": "the process answers"}, **ANY}
READYZ: Final[Responses] = {
    200: {"model": Readiness, "description": "ready"},
    **ANY,
    503: {"model": Readiness | ErrorResponse, "description": "not ready ({ready: false}), or " + FULL},
}
METRICS: Final[Responses] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format 0.0.4"},
    **ANY,
}
MODEL: Final[Responses] = {
    200: {"model": ModelDescription, "description": "the served model"},
    **errors({500: INTERNAL, 503: "the model is not loaded yet, or " + FULL}),
}
LIFT: Final[Responses] = {
    200: {
        "description": "the 3D joints; with `Accept: application/x-bvh`, the one track as a BVH file",
        "content": {"application/x-bvh": {"schema": {"type": "string"}}},
    },
    **errors({
        406: "Accept: application/x-bvh for an answer of several tracks (a BVH file holds one)",
        400: "the body is not JSON: syntax, encoding (UTF-8 only), or nesting deeper than 1024",
        408: "the body did not arrive within --read-timeout-s",
        413: "the body is over --max-body-bytes, or the request needs more model windows than the queue holds",
        415: "not application/json (or application/*+json) in UTF-8, or compressed (content-encoding)",
        422: "invalid input, the field named: the body's schema, and the rules of the description",
        500: "an unexpected error, or the model answered values that are not finite; logged with the request id",
        503: "the model is not ready, the service is shutting down, or it is full: the queue, the large-body "
        "readers or the connections (with Retry-After)",
        504: "no answer within --timeout-s; the request's queued windows were dropped",
    }),
}  # fmt: skip


def add_probes(app: FastAPI, lifter: Lifter) -> None:
    """``/healthz`` (the process answers), ``/readyz`` (the model serves), ``/metrics``, ``/v1/model``. They answer
    plain dicts; ``schemas`` documents them."""

    @app.get("/healthz", summary="The process is alive", responses=HEALTHZ)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", summary="The model is loaded and warmed up", responses=READYZ)
    async def readyz() -> JSONResponse:
        ready = lifter.ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response, responses=METRICS)
    async def metrics() -> Response:
        return Response(lifter.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/model", summary="The served model", responses=MODEL)
    async def model() -> JSONResponse:
        return JSONResponse(lifter.info.describe(JOINT_NAMES))


def add_lift(app: FastAPI, lifter: Lifter, reader: BodyReader) -> None:
    """``POST /lift``: admission first (from the headers and the queue, before the body is read), then the body
    (``reader``), then the core. Errors are the core's ``LiftError``s, answered by the app's handler."""

    @app.post("/lift", summary="Lift 2D keypoint sequences to 3D joints", response_model=LiftResponse, responses=LIFT)
    async def lift(request: Request) -> Response:
        try:
            check_media(request.headers)
            bvh_parameters(request)  # the BVH answer's query parameters, checked before any work
            lifter.admit(door=False)  # the door (protocol.py) admitted it; this catches servers without it
            with reader.reserve(declared_length(request.headers)) as reserved:
                parsed = await reader.parse_chunks(request.stream(), reserved=reserved)
        except LiftError as exc:
            raise lifter.refused(
                exc, protocol="rest", caller=caller_of(request), request_id=request.state.request_id
            ) from None
        except ClientDisconnect:  # the client left while sending its body: nobody to answer, nothing went wrong
            lifter.abandoned("rest")
            log.info("client went away while sending its body; request %s dropped", request.state.request_id)
            return Response(status_code=499)
        result = await _unless_disconnected(
            request,
            lifter.lift(parsed.tracks, parsed.options, caller=caller_of(request), request_id=request.state.request_id),
        )
        if result is None:  # nobody to answer; 499 as nginx logs it
            return Response(status_code=499)
        if wants_bvh(request):  # Accept: application/x-bvh (service/api/rest/motion.py)
            return await bvh_answer(request, result, reader)
        payload = answer(result, request.state.request_id, lifter, ids=parsed.ids)
        return Response(orjson.dumps(payload, option=JSON_OPTIONS), media_type="application/json")


def caller_of(request: Request) -> Caller:
    """Who is calling (``auth.KeyCheck`` put it there), ``ANONYMOUS`` without keys."""
    caller: Caller = getattr(request.state, "caller", ANONYMOUS)
    return caller


def declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def check_media(headers: Headers) -> None:
    """The body must be plain JSON: ``UnsupportedMediaType`` for another content type (a request without one is
    read as JSON), a charset other than UTF-8, or a content encoding (gzip...)."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(
            f"content-encoding {encoding!r} is not supported; send the JSON uncompressed", field="content-encoding"
        )
    declared = headers.get("content-type")
    if declared is None:
        return
    media, _, params = (part.strip().lower() for part in declared.partition(";"))
    charset = params.removeprefix("charset=").strip('"') if params.startswith("charset=") else "utf-8"
    if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))):
        raise UnsupportedMediaType(
            f"content-type {media!r} is not supported; send application/json", field="content-type"
        )
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"charset {charset!r} is not supported; send UTF-8 JSON", field="content-type")


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


def _arrays(track: TrackResult) -> dict[str, Any]:
    out: dict[str, Any] = {"joints3d": np.ascontiguousarray(track.joints3d)}
    if track.joints3d_px is not None:
        out["joints3d_px"] = np.ascontiguousarray(track.joints3d_px)
    return out


def answer(result: LiftResult, request_id: str, lifter: Lifter, *, ids: list[str | int] | None) -> dict[str, Any]:
    """The JSON answer: one sequence's arrays at the top (``ids`` None), else ``tracks`` with the ids as sent."""
    payload: dict[str, Any] = {"request_id": request_id}
    if ids is None:
        payload["frames"] = len(result.tracks[0].joints3d)
        payload.update(_arrays(result.tracks[0]))
    else:
        payload["frames"] = sum(len(t.joints3d) for t in result.tracks)
        sent = {str(i): i for i in ids}  # the ids with their JSON type; a piece cut by max_gap_frames is new
        payload["tracks"] = [
            {"id": sent.get(t.id, t.id), "start": t.start, "frames": len(t.joints3d), "filled": list(t.filled),
             **_arrays(t)}
            for t in result.tracks
        ]  # fmt: skip
    payload.update(joint_names=list(JOINT_NAMES), coordinates=result.coordinates)
    payload.update(result.timing.to_json())
    payload["model"] = lifter.info.ref()
    return payload
