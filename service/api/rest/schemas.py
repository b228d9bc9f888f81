"""REST wire models: what ``POST /lift`` accepts and answers, as documented at ``/docs``.

They only describe JSON types; every check on values (shapes, NaN, limits, option consistency) is the
core's (``service.core.options``), so REST and gRPC answer the same input the same way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Keypoints = list[list[list[float]]]

KEYPOINTS_DOC = (
    "frames x joints x [x, y] or [x, y, score]; joints in the order of `format`; score in [0, 1] "
    "(default 1; 0 marks a missing joint)"
)


class TrackIn(BaseModel):
    """One person's sequence in a multi-person request."""

    model_config = ConfigDict(extra="forbid")

    id: str | int | None = Field(None, description="your track id, echoed back; default: its index")
    keypoints: Keypoints = Field(description=KEYPOINTS_DOC)


class LiftRequest(BaseModel):
    """A sequence (``keypoints``) or several (``tracks``) of 2D keypoints to lift to 3D."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "keypoints": [[[960.0, 540.0, 0.9]] * 17],
                    "format": "h36m",
                    "image_size": [1920, 1080],
                }
            ]
        },
    )

    keypoints: Keypoints | None = Field(None, description=KEYPOINTS_DOC)
    tracks: list[TrackIn] | None = Field(None, description="several sequences (persons) in one request")
    format: Literal["h36m", "coco", "halpe26"] = Field(
        description="joint layout: Human3.6M-17, COCO-17 (RTMPose, YOLO-pose, MMPose) or Halpe-26 (AlphaPose)"
    )
    image_size: tuple[float, float] | None = Field(None, description="[width, height] of the video in pixels")
    normalization: Literal["pixel", "crop", "none"] | None = Field(
        None,
        description="pixel: by the image size (default when image_size is given); crop: by the sequence's "
        "bounding box (default otherwise); none: coordinates are already normalised to [-1, 1]",
    )
    flip: bool = Field(True, description="flip test-time augmentation (2x compute, more accurate)")
    rootrel: bool = Field(False, description="root-centred output: the pelvis at the origin in every frame")
    pixels: bool | None = Field(
        None, description="also answer in pixels (joints3d_px); default: when pixel normalization is used"
    )
    overlap: int | None = Field(
        None, description="frames shared by consecutive windows (cross-faded); 0 = the official clipping"
    )

    @model_validator(mode="after")
    def _one_source(self) -> LiftRequest:
        if (self.keypoints is None) == (self.tracks is None):
            raise ValueError("send exactly one of keypoints (one sequence) or tracks (several)")
        return self


class Latency(BaseModel):
    preprocess: float
    queue: float
    inference: float
    postprocess: float
    total: float


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
