"""The OpenAPI document (``GET /openapi.json``, shown at ``/docs``): FastAPI's, from the routes and their response
models, plus the body of ``POST /lift``, which the route reads itself.

The body's schema states the service's real rules, from the core's constants and the served limits: joints per
frame by ``format`` (``FORMATS``), 2 or 3 numbers per joint (the same in one sequence), coordinates within
``COORDINATE_LIMIT``, scores not negative, frames and tracks up to ``max_frames`` / ``max_tracks``, track ids
(``MAX_ID_CHARS``, int64), ``image_size`` within ``IMAGE_SIDE``, ``overlap`` below the served model's window,
exactly one of ``keypoints`` / ``tracks``, and the pixel options' dependencies. The few rules JSON Schema cannot
state are in the operation's description. The document is built on its first request once the model has
started (the window is the served model's) and kept from then on.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.api.rest.auth import is_open
from service.api.rest.examples import REQUEST_EXAMPLES
from service.api.rest.schemas import options_model
from service.config import Settings
from service.core.arrays import COORDINATE_LIMIT
from service.core.keypoints import CROP_MIN_VALID_JOINTS
from service.core.lifter import Lifter
from service.core.options import FORMATS, SELECTION_FIELDS
from service.core.tracks import MAX_ID_CHARS, MAX_START
from service.errors import LiftError

SCHEMAS: Final = "#/components/schemas/"
KEYPOINTS_DOC: Final = (
    "one sequence: frames x joints x [x, y] or [x, y, score] (the same in every joint of the sequence); joints in "
    "the order of `format`. Send exactly one of `keypoints` and `tracks`"
)
TRACKS_DOC: Final = "several sequences (persons), each {id, keypoints}; send exactly one of `keypoints` and `tracks`"


START: Final = {
    "type": ["integer", "null"],
    "minimum": 0,
    "maximum": MAX_START,
    "description": "the video frame of the track's first frame; answers number frames from it (default 0)",
}
NO_SELECTION: Final = {
    name: {"type": "null", "description": "the track policy chooses among tracks: send tracks"}
    for name in SELECTION_FIELDS
}


BVH_PARAMETERS: Final = [
    {"name": "fps", "in": "query", "required": False, "description": "with Accept: application/x-bvh: the video's "
     "frames per second (the BVH frame time)", "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000,
     "default": 30}},
    {"name": "height_m", "in": "query", "required": False, "description": "with Accept: application/x-bvh: the "
     "subject's height in metres (the skeleton's scale)", "schema": {"type": "number", "minimum": 0.3,
     "maximum": 3.0, "default": 1.7}},
]  # fmt: skip


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


def _sequence(joints: int, joint: str, max_frames: int) -> dict[str, Any]:
    frame = {"type": "array", "minItems": joints, "maxItems": joints, "items": _ref(joint)}
    return {"type": "array", "minItems": 1, "maxItems": max_frames, "items": frame}


def keypoint_components(max_frames: int) -> dict[str, dict[str, Any]]:
    """Schemas of a joint, a track id, and a sequence and a track of each format."""
    coordinate = {"$ref": SCHEMAS + "Coordinate"}
    out: dict[str, dict[str, Any]] = {
        "Coordinate": {
            "type": "number",
            "format": "float",
            "minimum": -COORDINATE_LIMIT,
            "maximum": COORDINATE_LIMIT,
            "description": f"x or y: pixels, or normalised units (normalization none); within +-{COORDINATE_LIMIT:g}",
        },
        "Score": {
            "type": "number",
            "format": "float",
            "minimum": 0,
            "description": "the detector's confidence: 0 marks a missing joint, a score above 1 counts as 1 (however "
            "large)",
        },
        "JointXY": {"type": "array", "prefixItems": [coordinate, coordinate], "minItems": 2, "maxItems": 2},
        "JointXYScore": {
            "type": "array",
            "prefixItems": [coordinate, coordinate, _ref("Score")],
            "minItems": 3,
            "maxItems": 3,
        },
        "TrackId": {
            "description": f"your track id, echoed back as sent: a string of at most {MAX_ID_CHARS} characters or "
            'an integer within int64; unique within the request (1 and "1" are the same id); default (absent or '
            "null): the track's index",
            "anyOf": [
                {"type": "string", "maxLength": MAX_ID_CHARS},
                {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
                {"type": "null"},
            ],
        },
    }
    for name, joints in FORMATS.items():
        out[f"Keypoints_{name}"] = {
            "description": f"a {name} sequence: 1 to {max_frames} frames of {joints} joints, each [x, y] or "
            "[x, y, score], the same in every joint",
            "oneOf": [_sequence(joints, "JointXY", max_frames), _sequence(joints, "JointXYScore", max_frames)],
        }
        out[f"Track_{name}"] = {
            "description": f"one person's {name} sequence",
            "type": "object",
            "additionalProperties": False,
            "required": ["keypoints"],
            "properties": {"id": _ref("TrackId"), "keypoints": _ref(f"Keypoints_{name}"), "start": START},
        }
    return out


def _shapes(max_tracks: int) -> list[dict[str, Any]]:
    """One branch per format and request shape: the joint count follows ``format``; exactly one of keypoints and
    tracks is given (the other absent or null)."""
    branches: list[dict[str, Any]] = []
    for name in FORMATS:
        fmt = {"const": name}
        branches.append(
            {
                "title": f"{name}: one sequence",
                "required": ["keypoints"],
                "properties": {
                    "format": fmt,
                    "keypoints": _ref(f"Keypoints_{name}"),
                    "tracks": {"type": "null"},
                    **NO_SELECTION,
                },
            }
        )
        tracks = {"type": "array", "minItems": 1, "maxItems": max_tracks, "items": _ref(f"Track_{name}")}
        branches.append({
            "title": f"{name}: tracks",
            "required": ["tracks"],
            "properties": {"format": fmt, "tracks": tracks, "keypoints": {"type": "null"}},
        })  # fmt: skip
    return branches


# The options that depend on one another (``LiftOptions.check``).
PIXEL_RULES: Final[list[dict[str, Any]]] = [
    {
        "description": "pixel normalization needs image_size",
        "if": {"required": ["normalization"], "properties": {"normalization": {"const": "pixel"}}},
        "then": {"required": ["image_size"], "properties": {"image_size": {"type": "array"}}},
    },
    {
        "description": "pixel output (pixels: true) needs image_size and pixel normalization (given or default)",
        "if": {"required": ["pixels"], "properties": {"pixels": {"const": True}}},
        "then": {
            "required": ["image_size"],
            "properties": {"image_size": {"type": "array"}, "normalization": {"enum": ["pixel", None]}},
        },
    },
    {
        "description": "a root trajectory needs image_size and pixel normalization (given or default)",
        "if": {"required": ["root"], "properties": {"root": {"const": "trajectory"}}},
        "then": {
            "required": ["image_size"],
            "properties": {"image_size": {"type": "array"}, "normalization": {"enum": ["pixel", None]}},
        },
    },
    {
        "description": "focal_length_px places the root trajectory: it needs root: trajectory",
        "if": {"required": ["focal_length_px"], "properties": {"focal_length_px": {"type": "number"}}},
        "then": {"required": ["root"], "properties": {"root": {"const": "trajectory"}}},
    },
    {
        "description": "rootrel: true is root: relative; another root contradicts it",
        "if": {"required": ["rootrel"], "properties": {"rootrel": {"const": True}}},
        "then": {"properties": {"root": {"enum": ["relative", None]}}},
    },
]


def request_schema(settings: Settings, window: int | None) -> dict[str, dict[str, Any]]:
    """``LiftRequest`` and the schemas it refers to, for ``components.schemas``."""
    options = options_model(window).model_json_schema(ref_template=SCHEMAS + "{model}")
    components: dict[str, dict[str, Any]] = options.pop("$defs", {})
    components.update(keypoint_components(settings.max_frames))
    components["LiftRequest"] = {
        "title": "LiftRequest",
        "description": "A sequence (`keypoints`) or several (`tracks`) of 2D keypoints to lift to 3D, and how.",
        "type": "object",
        "additionalProperties": False,
        "required": ["format"],
        "properties": {
            "keypoints": {"type": ["array", "null"], "description": KEYPOINTS_DOC},
            "tracks": {"type": ["array", "null"], "description": TRACKS_DOC},
            **options["properties"],
        },
        "oneOf": _shapes(settings.max_tracks),
        "allOf": PIXEL_RULES,
    }
    return components


def lift_description(settings: Settings) -> str:
    """The rules of ``POST /lift`` that its schema cannot state, with the served limits."""
    return (
        "Lifts one sequence (`keypoints`) or several (`tracks`) of 2D keypoints to 3D joints (H36M-17). The body's "
        "schema states every rule it can; these it cannot, and they are answered 422 (`invalid_input`, naming the "
        "field) unless said otherwise:\n\n"
        '- track ids are unique within a request: `1` and `"1"` are the same id, and a track without one takes '
        "its index;\n"
        "- crop normalisation (`normalization: crop`, the default without `image_size`) scales by the box around "
        f"the whole sequence's joints, so it refuses a sequence whose joints span no box: fewer than "
        f"{CROP_MIN_VALID_JOINTS} joints with a non-zero score over the sequence, or all of them at one point "
        "(send `image_size` for pixel normalisation, or normalised input with `normalization: none`);\n"
        "- the track policy (`min_track_frames`, `max_gap_frames`, `person`; for `tracks` only) refuses a request "
        "that leaves no track: none with `min_track_frames` detected frames (a frame is detected unless all its "
        "scores are 0), or no kept track named `person`;\n"
        f"- a body over {settings.max_body_bytes:,} bytes is refused with 413, and so is a request that needs more "
        f"model windows (flipped copies included) than the queue holds ({settings.max_queued_windows:,}).\n\n"
        "Keypoints are read as float32 (`format: float`): each number is rounded to float32 before it is checked "
        "(a number less than half a float32 step past a limit reads as the limit), except that a score above 1 "
        "counts as 1 however large. Answers carry float32 numbers as the shortest decimal that reads back as the "
        "same float32."
    )


def _add_headers(document: dict[str, Any]) -> None:
    """Every answer carries ``x-request-id``; a 503 may carry ``Retry-After``."""
    document["components"]["headers"] = {
        "RequestId": {
            "description": "the request's id: the client's x-request-id (first 128 characters) or a new one",
            "required": True,
            "schema": {"type": "string"},
        },
        "RetryAfter": {
            "description": "seconds to wait before retrying, when the service is full (queue, readers, connections)",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        },
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                headers = response.setdefault("headers", {})
                headers["x-request-id"] = {"$ref": "#/components/headers/RequestId"}
                if status in ("429", "503"):
                    headers["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}


def build(app: FastAPI, settings: Settings, window: int | None) -> dict[str, Any]:
    """The whole document for ``app``'s routes, with ``POST /lift``'s body for a model of ``window`` frames."""
    document = get_openapi(
        title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
    )
    document.setdefault("components", {}).setdefault("schemas", {}).update(request_schema(settings, window))
    lift = document["paths"]["/lift"]["post"]
    lift["description"] = lift_description(settings)
    lift["parameters"] = BVH_PARAMETERS
    lift["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": _ref("LiftRequest"), "examples": REQUEST_EXAMPLES}},
    }
    if settings.api_keys is not None:
        _add_security(document)
    _add_headers(document)
    return document


def _add_security(document: dict[str, Any]) -> None:
    """With API keys: the bearer scheme (Swagger UI's "Authorize" sends it), on every operation but the probes,
    with their 401 and 429 answers."""
    document["components"]["securitySchemes"] = {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "an API key of `motionlift keys create`: `Authorization: Bearer <key>`",
        }
    }
    error = {"content": {"application/json": {"schema": {"$ref": SCHEMAS + "ErrorResponse"}}}}
    for path, operations in document["paths"].items():
        if is_open(path):
            continue
        for operation in operations.values():
            operation["security"] = [{"apiKey": []}]
            responses = operation["responses"]
            responses.setdefault("401", {"description": "no API key, or one not valid (unknown or revoked)", **error})
            responses.setdefault("429", {"description": "this key is over its quota (with Retry-After)", **error})


def install(app: FastAPI, lifter: Lifter) -> None:
    """Serve ``build``'s document at ``app.openapi_url``: built when first asked for, and kept once it has the
    served model's window (before the model has started it is built without it, each time)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        try:
            window: int | None = lifter.info.window
        except LiftError:  # the model is not loaded yet
            window = None
        document = build(app, lifter.settings, window)
        if window is not None:
            app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document
