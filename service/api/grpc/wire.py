"""Protobuf messages <-> the core's types, for the gRPC edge (``service.api.grpc.servicer``).

Only decoding happens here: enums to names, packed floats to arrays of the stated shape. Every check on
values (joint counts, NaN, scores, option consistency, limits) is the core's, so gRPC and REST answer the
same input the same way. Decoding errors are ``InvalidInput`` naming the proto field
(``tracks[1].keypoints.values``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.core.backend import Array, ModelInfo
from service.core.keypoints import JOINT_NAMES
from service.core.lifter import Track
from service.core.options import LiftOptions, Normalization
from service.core.results import LiftResult
from service.core.stream_config import FrameAnswer, Mode, StreamConfig, StreamPlan, TrackFrame
from service.errors import InvalidInput

FORMATS: dict[int, str] = {pb.FORMAT_H36M: "h36m", pb.FORMAT_COCO: "coco", pb.FORMAT_HALPE26: "halpe26"}
NORMALIZATIONS: dict[int, Normalization | None] = {
    pb.NORMALIZATION_UNSPECIFIED: None,
    pb.NORMALIZATION_PIXEL: "pixel",
    pb.NORMALIZATION_CROP: "crop",
    pb.NORMALIZATION_NONE: "none",
}
MODES: dict[int, Mode] = {
    pb.STREAM_MODE_UNSPECIFIED: "causal",
    pb.STREAM_MODE_CAUSAL: "causal",
    pb.STREAM_MODE_LOOKAHEAD: "lookahead",
}


def _enum(table: dict[int, Any], value: int, field: str, names: str) -> Any:
    if value not in table:
        raise InvalidInput(f"unknown {field} {value}; expected one of {names}", field=field)
    return table[value]


def _format(value: int, field: str) -> str:
    if value == pb.FORMAT_UNSPECIFIED:
        raise InvalidInput("set the keypoint format: FORMAT_H36M, FORMAT_COCO or FORMAT_HALPE26", field=field)
    layout: str = _enum(FORMATS, value, field, "FORMAT_H36M, FORMAT_COCO, FORMAT_HALPE26")
    return layout


def _normalization(value: int, field: str) -> Normalization | None:
    mode: Normalization | None = _enum(NORMALIZATIONS, value, field, "NORMALIZATION_PIXEL, _CROP, _NONE")
    return mode


def _image_size(message: Any) -> tuple[float, float] | None:
    if not message.HasField("image_size"):
        return None
    return (message.image_size.width, message.image_size.height)


def packed(values: Sequence[float], shape: tuple[int, ...], field: str) -> Array:
    """Packed floats as a float32 array of ``shape``; ``InvalidInput`` when the count does not match."""
    expected = int(np.prod(shape))
    if len(values) != expected:
        dims = " x ".join(str(d) for d in shape)
        raise InvalidInput(f"expected {dims} = {expected} values, got {len(values)}", field=field)
    array = np.fromiter(values, dtype=np.float32, count=expected)
    return array.reshape(shape)


def lift_input(request: Any) -> tuple[list[Track], LiftOptions]:
    """Decode a ``LiftRequest`` into the arguments of ``Lifter.lift``."""
    if not request.tracks:
        raise InvalidInput("send at least one track", field="tracks")
    tracks = []
    for i, track in enumerate(request.tracks):
        k = track.keypoints
        field = f"tracks[{i}].keypoints"
        array = packed(k.values, (k.frames, k.joints, k.channels), f"{field}.values")
        tracks.append(Track(track.id or str(i), array, field))
    options = LiftOptions(
        layout=_format(request.format, "format"),
        image_size=_image_size(request),
        normalization=_normalization(request.normalization, "normalization"),
        flip=request.flip if request.HasField("flip") else True,
        rootrel=request.rootrel,
        pixels=request.pixels if request.HasField("pixels") else None,
        overlap=request.overlap if request.HasField("overlap") else None,
    )
    return tracks, options


def _joints(array: Array) -> Any:
    return pb.Joints3D(frames=array.shape[0], joints=array.shape[1], values=array.ravel().tolist())


def _model(info: ModelInfo) -> Any:
    return pb.ModelRef(name=info.name, config=info.config, trained=info.trained)


def lift_response(result: LiftResult, request_id: str, info: ModelInfo) -> Any:
    """Encode a ``LiftResult`` as a ``LiftResponse`` (floats as computed: float32, not rounded)."""
    t = result.timing
    return pb.LiftResponse(
        request_id=request_id,
        tracks=[
            pb.TrackResult(
                id=track.id,
                joints3d=_joints(track.joints3d),
                joints3d_px=None if track.joints3d_px is None else _joints(track.joints3d_px),
            )
            for track in result.tracks
        ],
        joint_names=list(JOINT_NAMES),
        coordinates=pb.Coordinates(**result.coordinates),
        latency=pb.Latency(
            preprocess_ms=t.preprocess_ms,
            queue_ms=t.queue_ms,
            inference_ms=t.inference_ms,
            postprocess_ms=t.postprocess_ms,
            total_ms=t.total_ms,
            batch_size=t.batch_size,
            batches=t.batches,
            windows=t.windows,
        ),
        model=_model(info),
    )


def stream_config(request: Any) -> StreamConfig:
    """Decode the first ``StreamRequest``, which must hold a ``StreamConfig``."""
    if request.WhichOneof("kind") != "config":
        raise InvalidInput("the first message of a stream must be its config", field="config")
    c = request.config
    return StreamConfig(
        layout=_format(c.format, "config.format"),
        image_size=_image_size(c),
        normalization=_normalization(c.normalization, "config.normalization"),
        window=c.window or None,
        hop=c.hop or None,
        mode=_enum(MODES, c.mode, "config.mode", "STREAM_MODE_CAUSAL, STREAM_MODE_LOOKAHEAD"),
        lookahead=c.lookahead,
        flip=c.flip if c.HasField("flip") else True,
        rootrel=c.rootrel,
        pixels=c.pixels if c.HasField("pixels") else None,
        expiry_s=c.track_expiry_s or None,
    )


def stream_frames(request: Any) -> list[TrackFrame]:
    """Decode a later ``StreamRequest``, which must hold a ``StreamFrame``."""
    if request.WhichOneof("kind") != "frame":
        raise InvalidInput("only the first message of a stream is a config; send frames", field="frame")
    frames = []
    for i, t in enumerate(request.frame.tracks):
        field = f"frame.tracks[{i}]"
        pose = packed(t.keypoints, (t.joints, t.channels), f"{field}.keypoints")
        index = t.frame_index if t.HasField("frame_index") else None
        stamp = t.timestamp_s if t.HasField("timestamp_s") else None
        frames.append(TrackFrame(t.track_id, pose, index, stamp, field))
    return frames


def stream_started(plan: StreamPlan, coordinates: dict[str, str], info: ModelInfo) -> Any:
    """The ``StreamResponse`` that opens every stream: the configuration in effect."""
    started = pb.StreamStarted(
        window=plan.window,
        hop=plan.hop,
        mode=pb.STREAM_MODE_LOOKAHEAD if plan.mode == "lookahead" else pb.STREAM_MODE_CAUSAL,
        lookahead=plan.lookahead,
        track_expiry_s=plan.expiry_s,
        joint_names=list(JOINT_NAMES),
        coordinates=pb.Coordinates(**coordinates),
        model=_model(info),
    )
    return pb.StreamResponse(started=started)


def frame_answer(answer: FrameAnswer) -> Any:
    """One ``StreamResponse`` carrying a ``FrameAnswer``."""
    message = pb.FrameAnswer(
        track_id=answer.track_id,
        frame_index=answer.frame_index,
        timestamp_s=answer.timestamp_s,
        joints3d=_joints(answer.joints3d[None]),
        joints3d_px=None if answer.joints3d_px is None else _joints(answer.joints3d_px[None]),
        lookahead=answer.lookahead,
        window_frames=answer.window_frames,
        latency=pb.StreamLatency(
            total_ms=answer.total_ms,
            lookahead_ms=answer.lookahead_ms,
            queue_ms=answer.queue_ms,
            inference_ms=answer.inference_ms,
            batch_size=answer.batch_size,
        ),
        skipped=answer.skipped,
        skipped_total=answer.skipped_total,
    )
    return pb.StreamResponse(frame=message)
