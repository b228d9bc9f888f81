"""REST wire models, for the OpenAPI document only: requests are parsed by ``body.parse`` and answers written by
orjson (``routes.answer``) or plain dicts, so these models never see a request. They state what the routes send,
field by field; tests/integration/api/test_openapi.py fuzzes the live service against them.

The request's option fields are derived from ``LiftOptions`` (names, types, defaults, ``FIELD_DOCS``) with the
core's ranges; the keypoint arrays, which JSON Schema states per format, are built in ``service.api.rest.openapi``.
The latency object follows the core's stage names, the error codes the error table: one definition each.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, fields
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from service.core.fields import FIELD_DOCS
from service.core.keypoints import JOINT_NAMES
from service.core.options import CHOICES, FOCAL_PX, IMAGE_SIDE, MAX_PERSON_CHARS, MAX_SELECTION_FRAMES, LiftOptions
from service.core.results import STAGES
from service.errors import ERRORS

# --- the request's options -------------------------------------------------------------------------------------

NULL_DOC = "; null is the same as leaving the field out"
Side = Annotated[float, Field(ge=IMAGE_SIDE[0], le=IMAGE_SIDE[1])]


def _ranges(window: int | None) -> dict[str, Any]:
    """Annotations that narrow a ``LiftOptions`` field to the range ``check`` enforces (``window``: the served
    model's, when known: ``overlap`` is below it)."""
    overlap = Annotated[int, Field(ge=0)] if window is None else Annotated[int, Field(ge=0, le=window - 1)]
    frames = Annotated[int, Field(ge=1, le=MAX_SELECTION_FRAMES)]
    gap = Annotated[int, Field(ge=0, le=MAX_SELECTION_FRAMES)]
    person = Annotated[str, Field(min_length=1, max_length=MAX_PERSON_CHARS)]
    odd = Annotated[int, Field(ge=5, le=99, json_schema_extra={"not": {"multipleOf": 2}})]
    return {
        "image_size": tuple[Side, Side],
        "overlap": overlap,
        "min_track_frames": frames,
        "max_gap_frames": gap,
        "person": person,
        "smoothing_window": odd,
        "smoothing_cutoff": Annotated[float, Field(ge=0.001, le=1000)],
        "smoothing_beta": Annotated[float, Field(ge=0, le=1000)],
        "fps": Annotated[float, Field(ge=1, le=1000)],
        "subject_height_m": Annotated[float, Field(ge=0.5, le=2.5)],
        "focal_length_px": Annotated[float, Field(ge=FOCAL_PX[0], le=FOCAL_PX[1])],
    }


def options_model(window: int | None) -> type[BaseModel]:
    """The request's option fields as a model: one per ``LiftOptions`` field, with its default and doc. Every
    field but ``format`` takes null for its default (``LiftOptions.from_mapping`` skips nulls); ``format`` is
    required and one of its choices."""
    hints = typing.get_type_hints(LiftOptions)
    narrowed = _ranges(window)
    out: dict[str, Any] = {}
    for f in fields(LiftOptions):
        annotation = narrowed.get(f.name, hints[f.name])
        if f.name in CHOICES:  # Literal["h36m", "coco", ...] from the option's choices
            annotation = typing.cast(Any, Literal)[CHOICES[f.name]]
        doc = FIELD_DOCS[f.name]
        if f.name == "overlap" and window is not None:
            doc += f"; 0 to {window - 1} for the served model's window of {window} frames"
        if f.default is MISSING:
            out[f.name] = (annotation, Field(description=doc))
        else:
            out[f.name] = (annotation | None, Field(f.default, description=doc + NULL_DOC))
    return create_model("LiftOptions", __config__=ConfigDict(extra="forbid"), **out)


# --- answers ---------------------------------------------------------------------------------------------------

Joint3D = Annotated[list[float], Field(min_length=3, max_length=3)]
Pose3D = Annotated[list[Joint3D], Field(min_length=len(JOINT_NAMES), max_length=len(JOINT_NAMES))]
Joints3D = Annotated[list[Pose3D], Field(min_length=1)]
JOINTS3D_DOC = "frames x 17 joints (H36M-17, `joint_names`) x [x, y, z], in the input's normalised units"
PIXELS_DOC = "`joints3d` in pixels (x, y on the image, z in pixel-like units); only when pixel output applies"

_STAGE_FIELDS: dict[str, Any] = {
    stage: (float, Field(ge=0, description=f"{stage} time, milliseconds")) for stage in STAGES
}
Latency = create_model(
    "Latency",
    __doc__="Where the request's time went, milliseconds; the stages add up to `total`.",
    **_STAGE_FIELDS,
)


class Coordinates(BaseModel):
    """The coordinate contract of the answer, stated in words (README "Coordinates")."""

    units: str = Field(description="the units of joints3d (and joints3d_px)")
    space: str = Field(description="the camera space and axis directions")
    root: str = Field(description="what the origin is")
    axes: str = Field(description="how the arrays are indexed")


class ModelRef(BaseModel):
    """The model an answer came from."""

    name: str = Field(description="the model's name, e.g. dstformer")
    config: str = Field(description="its configuration name (tiny, lite, full, default...)")
    trained: bool = Field(description="false for random weights: answers have the right shape, not real poses")


class TrackOut(BaseModel):
    """One track's answer."""

    id: str | int = Field(
        description="the track's id as sent (string or integer), or its index when none was sent; a piece cut by "
        "max_gap_frames is named <id>-2, <id>-3..."
    )
    start: int = Field(
        ge=0,
        description="the video frame of the track's first frame (as sent, or where a cut by max_gap_frames begins)",
    )
    frames: int = Field(ge=1, description="frames of this track")
    filled: list[Annotated[int, Field(ge=0)]] = Field(
        description="the video frames of this track that were not detected (every score 0): filled in by the "
        "detector file's reader, or sent that way"
    )
    joints3d: Joints3D = Field(description=JOINTS3D_DOC)
    joints3d_px: Joints3D | None = Field(None, description=PIXELS_DOC)


class LiftResponse(BaseModel):
    """The 3D joints. A `keypoints` request is answered with `joints3d` (and `joints3d_px`) at the top; a `tracks`
    request with `tracks`, one per track in the order sent."""

    request_id: str = Field(description="the request's id (also the x-request-id header)")
    frames: int = Field(ge=1, description="frames answered: the sequence's, or all tracks' together")
    joints3d: Joints3D | None = Field(None, description=JOINTS3D_DOC + "; for a `keypoints` request")
    joints3d_px: Joints3D | None = Field(None, description=PIXELS_DOC + "; for a `keypoints` request")
    tracks: list[TrackOut] | None = Field(None, description="one answer per track, for a `tracks` request")
    joint_names: list[str] = Field(description="names of the 17 output joints, in order (H36M-17)")
    coordinates: Coordinates
    latency_ms: Latency
    batch_size: int = Field(ge=1, description="the largest model batch one of the request's windows ran in")
    batches: int = Field(ge=1, description="model batches that carried the request's windows")
    windows: int = Field(ge=1, description="model windows the request needed (flipped copies included)")
    model: ModelRef


# --- errors and probes -----------------------------------------------------------------------------------------

# Every code an answer can carry: the error table's, and `http_error` for an HTTP error Starlette raised itself.
ERROR_CODES: tuple[str, ...] = (*dict.fromkeys(cls.code for cls in ERRORS), "http_error")


class ErrorBody(BaseModel):
    """What went wrong."""

    code: Literal[ERROR_CODES] = Field(description="machine-readable kind of error")  # type: ignore[valid-type]
    message: str = Field(description="what went wrong, for a person")
    field: str | None = Field(
        None, description="the request field at fault, e.g. `tracks[1].keypoints[40][3]`; absent when none is"
    )
    request_id: str = Field(description="the request's id (also the x-request-id header); quote it in reports")


class ErrorResponse(BaseModel):
    """Every error answer of the service."""

    error: ErrorBody


class Health(BaseModel):
    """``GET /healthz``: the process answers."""

    status: Literal["ok"] = Field(description="always ok")


READY_DOC = "true (200) once the model is loaded and warmed up; false (503) before, and while shutting down"


class Readiness(BaseModel):
    """``GET /readyz``: whether the model serves."""

    ready: bool = Field(description=READY_DOC)


class ModelDescription(BaseModel):
    """The served model, as its export wrote it."""

    name: str = Field(description="the model's name, e.g. dstformer")
    config: str = Field(description="its configuration name")
    hyperparams: dict[str, Any] = Field(description="the architecture's hyperparameters")
    params: int = Field(ge=0, description="parameters")
    window: int = Field(ge=1, description="frames per model window; longer sequences are cut into windows")
    joints: int = Field(description="output joints per frame")
    joint_names: list[str] = Field(description="their names, in order (H36M-17)")
    precision: str = Field(description="compute precision: fp32, bf16 or fp16")
    device: str = Field(description="where it runs: cpu, cuda:N, triton/cpu or triton/gpu")
    trained: bool = Field(description="false for random weights")
    weights: str = Field(description="where the weights came from")
    card: str | None = Field(description="the model card's file name, null when there is none")
