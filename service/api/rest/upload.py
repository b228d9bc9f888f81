"""``POST /lift/file``: a detector's output file, lifted without client code.

The body is the file itself: a multipart upload (``curl -F file=@alphapose-results.json``, field ``file``) or the
raw bytes (``curl --data-binary @results.json -H 'content-type: application/json'``). ``?source=`` names the
detector (``alphapose``, ``mmpose``, ``coco``, ``openpose`` (one frame's JSON, or the folder as a zip archive:
``service.formats.archive``), ``mediapipe``, ``yolo``,
``motionlift``; default ``auto``: detected, with an error listing the layouts when none fits); the lift options
are query parameters too (``format``, ``image_size=W,H``, ``flip``, ``rootrel``, ``pixels``, ``normalization``,
``overlap``). The file is read by the same readers as ``motionlift lift`` (``service.formats``): its people
become tracks (tracking where the file's ids are missing or broken), so the answer has one track per person with
the video frame it starts at, its frames, and the frames that were filled rather than detected.

The file is read where its size says, as ``POST /lift`` bodies are (``reader.py``: on the loop up to 64 KiB, in a
thread up to 1 MiB, beyond in a body reader process, whose GIL is not the loop's); files are capped at
``UPLOAD_BYTES`` (about 30,000 frames of one person from AlphaPose).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

import numpy as np
import orjson
from fastapi import FastAPI, Request, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from service.api.rest.reader import BodyReader
from service.api.rest.routes import JSON_OPTIONS, Responses, answer, caller_of, declared_length, errors
from service.core.fields import FIELD_DOCS
from service.core.lifter import Lifter
from service.core.options import (
    CHOICES,
    FORMATS,
    LIFT_FIELDS,
    MAX_PERSON_CHARS,
    MAX_SELECTION_FRAMES,
    LiftOptions,
)
from service.errors import BadRequest, InvalidInput, LiftError, PayloadTooLarge
from service.formats import SOURCES, KeypointFile, KeypointFileError, archive, parse
from service.formats.policy import MIN_TRACK_FRAMES, file_options, file_tracks, reading_gap
from service.formats.tracking import MAX_GAP

log = logging.getLogger(__name__)

UPLOAD_BYTES: Final = 16 << 20
_BOOLS: Final = {"true": True, "false": False}

UPLOAD: Final[Responses] = {
    200: {"description": "the 3D joints of every person in the file: POST /lift's answer with, per track, its "
          "first video frame (start) and the frames filled rather than detected (filled), and the input read"},
    **errors({
        400: "the file is not JSON",
        413: "the file is over 16 MiB, or needs more model windows than the queue holds",
        422: "a parameter, or the file: no layout fits (the message lists them) or the reader names the element",
        500: "an unexpected error; logged with the request id",
        503: "the model is not ready, the service is shutting down, or the queue is full (with Retry-After)",
        504: "no answer within --timeout-s",
    }),
}  # fmt: skip
ZIP_DOC: Final = (
    "a zip archive of an OpenPose folder (its *_keypoints.json files, in name order) or of one detector file; "
    "at most 64 MiB unpacked"
)
_FILE = {
    "type": "string",
    "format": "binary",
    "description": "the detector's output file, as it wrote it, or a zip archive of it (an OpenPose folder zipped)",
}
_QUERY: list[dict[str, Any]] = [
    {"name": "source", "in": "query", "required": False, "description": "the detector; auto: detected",
     "schema": {"type": "string", "enum": ["auto", *SOURCES], "default": "auto"}},
    {"name": "format", "in": "query", "required": False, "description": FIELD_DOCS["format"],
     "schema": {"type": "string", "enum": list(FORMATS)}},
    {"name": "image_size", "in": "query", "required": False, "description": "W,H: " + FIELD_DOCS["image_size"],
     "schema": {"type": "string", "pattern": r"^\d+(\.\d+)?,\d+(\.\d+)?$"}},
    *({"name": name, "in": "query", "required": False, "description": FIELD_DOCS[name],
       "schema": {"type": "string", "enum": ["true", "false"]}} for name in ("flip", "rootrel", "pixels")),
    {"name": "echo_input", "in": "query", "required": False, "description": "true: the answer's input also holds "
     "the file's tracks as read (id, start, 2D keypoints)", "schema": {"type": "string", "enum": ["true", "false"]}},
    {"name": "min_track_frames", "in": "query", "required": False,
     "description": FIELD_DOCS["min_track_frames"],
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SELECTION_FRAMES, "default": MIN_TRACK_FRAMES}},
    {"name": "max_gap_frames", "in": "query", "required": False, "description": FIELD_DOCS["max_gap_frames"],
     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SELECTION_FRAMES, "default": MAX_GAP}},
    {"name": "person", "in": "query", "required": False, "description": FIELD_DOCS["person"],
     "schema": {"type": "string", "minLength": 1, "maxLength": MAX_PERSON_CHARS, "default": "all"}},
]  # fmt: skip
# The other options, typed as the query string carries them (their ranges and rules: the JSON body's schema).
_QUERY += [
    {"name": name, "in": "query", "required": False, "description": FIELD_DOCS[name],
     "schema": {"type": {"int": "integer", "number": "number"}.get(kind, "string"),
                **({"enum": list(CHOICES[name])} if name in CHOICES else {})}}
    for name, kind in LIFT_FIELDS.items() if name not in {q["name"] for q in _QUERY}
]  # fmt: skip
OPENAPI: Final = {
    "parameters": _QUERY,
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {"file": _FILE}}},
            "application/json": {"schema": {"description": "the detector's output file, as it wrote it"}},
            "application/zip": {"schema": {"type": "string", "format": "binary", "description": ZIP_DOC}},
        },
    },
}


def add_upload(app: FastAPI, lifter: Lifter, reader: BodyReader) -> None:
    """Register ``POST /lift/file`` over ``lifter``; errors are ``LiftError``s, answered by the app's handler."""

    @app.post(
        "/lift/file",
        summary="Lift a pose detector's output file (AlphaPose, MMPose, COCO, OpenPose, MediaPipe, YOLO)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        responses=UPLOAD,
        openapi_extra=OPENAPI,
    )
    async def lift_file(request: Request) -> Response:
        try:
            lifter.admit()
            params = dict(request.query_params)
            echo = _value("bool", params.pop("echo_input", "false"), "echo_input")
            source, given = query(params)
            with reader.reserve(declared_length(request.headers)) as reserved:
                content = await _content(request)
                read = await reader.read(read_file, content, source, given, reserved=reserved)
            lift_options = LiftOptions.from_mapping(file_options(read, given))
        except LiftError as exc:
            raise lifter.refused(exc, protocol="rest") from None
        result = await lifter.lift(
            file_tracks(read),
            lift_options,
            protocol="rest",
            caller=caller_of(request),
            request_id=request.state.request_id,
        )
        payload = answer(result, request.state.request_id, lifter, ids=[t.id for t in read.tracks])
        payload["input"] = {"source": read.source, "format": read.layout, "frames": read.frames}
        if echo:  # the 2D keypoints as read (the viewer draws them beside the 3D)
            payload["input"]["tracks"] = [
                {"id": t.id, "start": t.start, "keypoints": np.asarray(t.keypoints, np.float32)} for t in read.tracks
            ]
        if read.frame_ids:
            payload["frame_ids"] = list(read.frame_ids)
        return Response(orjson.dumps(payload, option=JSON_OPTIONS), media_type="application/json")


def query(params: dict[str, str]) -> tuple[str | None, dict[str, Any]]:
    """The detector (None: detect it) and the lift options of the query string; ``InvalidInput`` naming the
    parameter for an unknown one or a value of the wrong type (no coercion beyond what a query string needs:
    ``true``/``false``, integers, ``W,H``)."""
    source = params.pop("source", "auto")
    if source != "auto" and source not in SOURCES:
        raise InvalidInput(f"unknown source {source!r}; expected auto or one of {', '.join(SOURCES)}", field="source")
    options: dict[str, Any] = {}
    for name, text in params.items():
        kind = LIFT_FIELDS.get(name)
        if kind is None:
            raise InvalidInput(f"unknown parameter; expected source or one of {', '.join(LIFT_FIELDS)}", field=name)
        options[name] = _value(kind, text, name)
    return (None if source == "auto" else source), options


def _value(kind: str, text: str, name: str) -> Any:
    if kind == "bool":
        if text.lower() not in _BOOLS:
            raise InvalidInput(f"must be true or false, got {text[:40]!r}", field=name)
        return _BOOLS[text.lower()]
    if kind == "int":
        if not text.lstrip("-").isdigit():
            raise InvalidInput(f"must be an integer, got {text[:40]!r}", field=name)
        return int(text)
    if kind == "size":
        parts = text.split(",")
        try:
            width, height = (float(p) for p in parts)
        except ValueError:
            raise InvalidInput(f"must be W,H (two numbers), got {text[:40]!r}", field=name) from None
        return [width, height]
    if kind == "number":
        try:
            return float(text)  # the options' own checks refuse NaN and values out of range, naming the field
        except ValueError:
            raise InvalidInput(f"must be a number, got {text[:40]!r}", field=name) from None
    return text


async def _content(request: Request) -> bytes:
    """The uploaded file's bytes: the multipart field ``file``, or the whole body."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media == "multipart/form-data":
        try:
            async with request.form(max_files=1, max_fields=16, max_part_size=UPLOAD_BYTES) as form:  # closes files
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise InvalidInput("send the file in the multipart field 'file' (curl -F file=@...)", field="file")
                content = await upload.read(UPLOAD_BYTES + 1)
        except HTTPException as exc:  # Starlette's word on a multipart body it cannot read
            raise BadRequest(f"the multipart body cannot be read: {exc.detail}", field="file") from None
    else:
        content = await request.body()
    if len(content) > UPLOAD_BYTES:
        raise PayloadTooLarge(f"a detector file may have at most {UPLOAD_BYTES >> 20} MiB", field="file")
    if not content:
        raise InvalidInput("the file is empty", field="file")
    return content


def read_file(content: bytes, source: str | None, given: dict[str, Any]) -> KeypointFile:
    """Parse the file as ``source`` (None: detect it), tracking with ``given``'s ``max_gap_frames``; ``BadRequest``
    if it is not JSON, ``InvalidInput`` naming ``file`` with the reader's message when the readers cannot use it.
    Which tracks are lifted is the core's track policy (``service.core.selection``), with the file defaults of
    ``service.formats.policy``."""
    gap = reading_gap(given)
    size = None if given.get("image_size") is None else (given["image_size"][0], given["image_size"][1])
    names = None
    try:
        if archive.is_zip(content):  # an OpenPose folder, zipped (service.formats.archive)
            data, names = archive.unpack(content)
            source = source or ("openpose" if names is not None else None)
        else:
            data = _json(content)
        return parse(data, source, given.get("format"), image_size=size, frame_ids=names, max_gap=gap)  # type: ignore[arg-type]
    except KeypointFileError as exc:
        raise InvalidInput(str(exc), field="file") from None


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the file is not JSON (nor a zip archive): {exc}", field="file") from None
