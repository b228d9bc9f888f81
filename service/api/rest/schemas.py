"""REST wire models, for the OpenAPI document at ``/docs`` only: requests are parsed by ``body.parse`` and
answers written by orjson, so these models never see a request.

The request's option fields are derived from ``LiftOptions`` (names, types, defaults, ``FIELD_DOCS``), the latency
object from the core's stage names: one definition each, which the document follows.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, fields
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from service.core.options import CHOICES, FIELD_DOCS, LiftOptions
from service.core.results import STAGES

Keypoints = list[list[list[float]]]

KEYPOINTS_DOC = (
    "frames x joints x [x, y] or [x, y, score]; joints in the order of `format`; score a confidence, default 1, "
    "0 marks a missing joint, above 1 counts as 1, negative is refused"
)


class TrackIn(BaseModel):
    """One person's sequence in a multi-person request."""

    model_config = ConfigDict(extra="forbid")

    id: str | int | None = Field(None, description="your track id, echoed back; default: its index")
    keypoints: Keypoints = Field(description=KEYPOINTS_DOC)


def _option_fields() -> dict[str, Any]:
    """``name -> (annotation, Field)`` for every ``LiftOptions`` field."""
    hints = typing.get_type_hints(LiftOptions)
    out: dict[str, Any] = {}
    for f in fields(LiftOptions):
        annotation = hints[f.name]
        if f.name in CHOICES:  # Literal["h36m", "coco", ...] from the option's choices
            choice = typing.cast(Any, Literal)[CHOICES[f.name]]
            annotation = choice if f.default is MISSING else choice | None
        default = ... if f.default is MISSING else f.default
        out[f.name] = (annotation, Field(default, description=FIELD_DOCS[f.name]))
    return out


LiftRequest = create_model(
    "LiftRequest",
    __config__=ConfigDict(
        extra="forbid",
        json_schema_extra={
            "description": "A sequence (`keypoints`) or several (`tracks`) of 2D keypoints to lift to 3D; "
            "send exactly one of the two.",
            "examples": [{"keypoints": [[[960.0, 540.0, 0.9]] * 17], "format": "h36m", "image_size": [1920, 1080]}],
        },
    ),
    keypoints=(Keypoints | None, Field(None, description=KEYPOINTS_DOC)),
    tracks=(list[TrackIn] | None, Field(None, description="several sequences (persons) in one request")),
    **_option_fields(),
)

_STAGE_FIELDS: dict[str, Any] = {stage: (float, Field(description=f"{stage}, ms")) for stage in STAGES}
Latency = create_model("Latency", **_STAGE_FIELDS)


class Coordinates(BaseModel):
    units: str
    space: str
    root: str
    axes: str


class TrackOut(BaseModel):
    id: str | int
    frames: int
    joints3d: list[list[list[float]]]
    joints3d_px: list[list[list[float]]] | None = None


class LiftResponse(BaseModel):
    """``joints3d``/``joints3d_px`` are set for a single-sequence request, ``tracks`` for a multi-track one."""

    request_id: str
    frames: int
    joints3d: list[list[list[float]]] | None = None
    joints3d_px: list[list[list[float]]] | None = None
    tracks: list[TrackOut] | None = None
    joint_names: list[str]
    coordinates: Coordinates
    latency_ms: Latency
    batch_size: int
    batches: int
    windows: int
    model: dict[str, object]


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None
    request_id: str


class ErrorResponse(BaseModel):
    error: ErrorBody
