"""What the core answers: per-track joints, the latency breakdown, and the coordinate contract."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

from service.core.backend import Array
from service.core.options import LiftOptions
from service.core.trace import Span

# Stage names of the REST form of a Timing (its ``latency_ms`` object), in order, and the counts beside it.
STAGES: Final = ("preprocess", "queue", "inference", "postprocess", "total")
COUNTS: Final = ("batch_size", "batches", "windows")


@dataclass(frozen=True)
class TrackResult:
    """One track's answer: ``joints3d`` ``[T, 17, 3]`` normalised; ``joints3d_px`` when pixels were asked;
    ``start``, the video frame of its first frame, and ``filled``, the video frames it has that were not
    detected (``service.core.selection``)."""

    id: str
    joints3d: Array
    joints3d_px: Array | None
    start: int = 0
    filled: tuple[int, ...] = ()


@dataclass(frozen=True)
class Timing:
    """Where the time of one request went, in milliseconds; the stages add up to ``total_ms``.

    ``queue_ms`` is the time the request's windows waited (for a batch to fill or for the model to be
    free); ``inference_ms`` the model compute of the batches that carried them; ``batch_size`` the largest
    batch one of its windows ran in.
    """

    preprocess_ms: float
    queue_ms: float
    inference_ms: float
    postprocess_ms: float
    total_ms: float
    batch_size: int
    batches: int
    windows: int

    def stages_ms(self) -> dict[str, float]:
        """Milliseconds per stage, keyed by ``STAGES``."""
        return {stage: float(getattr(self, f"{stage}_ms")) for stage in STAGES}

    def to_json(self) -> dict[str, object]:
        """The REST form, merged into an answer: ``latency_ms`` (stages, rounded to the microsecond) and the
        batch counts beside it. The gRPC form is ``Latency``, whose fields are this class's."""
        return {
            "latency_ms": {stage: round(ms, 3) for stage, ms in self.stages_ms().items()},
            **{key: getattr(self, key) for key in COUNTS},
        }

    def to_span(self, span: Span) -> None:
        """The tracing form, on a request's span: ``motionlift.latency.<stage>_ms`` and the batch counts."""
        for stage, ms in self.stages_ms().items():
            span.set(f"motionlift.latency.{stage}_ms", round(ms, 3))
        for key in COUNTS:
            span.set(f"motionlift.{key}", getattr(self, key))

    @classmethod
    def from_json(cls, answer: Mapping[str, object]) -> Timing:
        """Read ``to_json``'s form back out of an answer; ``KeyError`` / ``TypeError`` when it is not there."""
        ms = answer["latency_ms"]
        if not isinstance(ms, Mapping):
            raise TypeError(f"latency_ms must be an object, got {ms!r}")
        preprocess, queue, inference, postprocess, total = (_number(ms[stage]) for stage in STAGES)
        batch_size, batches, windows = (int(_number(answer[key])) for key in COUNTS)
        return cls(preprocess, queue, inference, postprocess, total, batch_size, batches, windows)

    @classmethod
    def from_fields(cls, message: object) -> Timing:
        """From anything with this class's attributes (the gRPC ``Latency`` message)."""
        return cls(**{f.name: getattr(message, f.name) for f in fields(cls)})


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Stamps:
    """How a set of windows went through the batcher: waiting vs computing (ms), batches it took."""

    queue_ms: float
    inference_ms: float
    batch_size: int
    batches: int
    windows: int


@dataclass(frozen=True)
class LiftResult:
    tracks: list[TrackResult]
    timing: Timing
    coordinates: dict[str, str]


def _focal(options: LiftOptions) -> str:
    if options.focal_length_px is not None:
        return f"focal length {options.focal_length_px:g} px, given"
    focal = options.resolved_focal_px()
    return "no focal length" if focal is None else f"focal length {focal:g} px, assumed: the image diagonal"


def coordinates(options: LiftOptions) -> dict[str, str]:
    """The coordinate contract of an answer, stated in every answer so no caller has to guess."""
    mode = options.resolved_normalization()
    units = {
        "pixel": "joints3d: pixels / (min(width, height) / 2), about the image centre",
        "crop": "joints3d: [-1, 1] over the square around the sequence's 2D bounding box",
        "none": "joints3d: the units of the (already normalised) input",
    }[mode] + "; z in the same scale as x and y (metres are not recoverable from one camera)"
    if options.subject_height_m is not None:
        units = (
            f"joints3d: metres, each track scaled once so its ankle-to-head joints span 0.941 x subject_height_m "
            f"({options.subject_height_m:g} m; anthropometric proportions, service/core/scale.py); x, y still overlay "
            "the 2D input up to that scale"
        )
    if options.resolved_pixels():
        units += "; joints3d_px: pixels (x, y on the image, z in pixel-like units)"
    root = {
        "relative": "root-relative: the pelvis is (0, 0, 0) in every frame",
        "image": "x, y overlay the 2D input; z is depth relative to the pelvis of the same frame "
        "(the official in-the-wild output)",
        "trajectory": "the pose about the pelvis, placed at the pelvis' estimated position in the camera's space "
        "(origin at the camera): distance = focal length / the 2D pose's size per unit of the 3D pose, per frame "
        f"({_focal(options)}); assumes a still pinhole camera with its principal point at the image centre, no lens "
        "distortion, and a body shallow next to its distance; in the units of joints3d",
    }[options.resolved_root()]
    return {
        "units": units,
        "space": "camera view as in MotionBERT's training data (H36M joint3d_image): "
        "x right, y down (image rows), z away from the camera",
        "root": root,
        "axes": "joints3d[frame][joint] = [x, y, z]; joints in H36M-17 order (joint_names)",
    }
