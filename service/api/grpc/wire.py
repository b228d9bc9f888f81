"""Protobuf messages <-> the core's types, for the gRPC edge (``servicer``).

Only decoding happens here: packed floats to arrays of the stated shape, enums to the option names (by the
proto's naming: ``FORMAT_COCO`` is ``coco``, ``NORMALIZATION_PIXEL`` ``pixel``, ``STREAM_MODE_LOOKAHEAD``
``lookahead``), message fields to the option fields of the same names. Every check on values is the core's,
so gRPC and REST answer the same input the same way. Decoding errors are ``InvalidInput`` naming the proto
field (``tracks[1].keypoints.values``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.core.backend import Array, ModelInfo
from service.core.frames import FrameAnswer, TrackFrame
from service.core.keypoints import JOINT_NAMES
from service.core.options import LiftOptions, StreamOptions, StreamPlan, parse_format, parse_mode, parse_normalization
from service.core.results import LiftResult
from service.core.tracks import Track
from service.errors import InvalidInput


def enum_name(enum: EnumTypeWrapper, value: int, prefix: str) -> str | int | None:
    """``FORMAT_COCO`` -> ``coco``; ``None`` for the UNSPECIFIED value; the number itself when it is not one of
    the enum's (so the core's message names it)."""
    if value == 0:
        return None
    try:
        name: str = enum.Name(value)
    except ValueError:
        return value
    return name.removeprefix(prefix).lower()


def packed(values: Sequence[float], shape: tuple[int, ...], field: str) -> Array:
    """Packed floats as a float32 array of ``shape``; ``InvalidInput`` when the count does not match."""
    expected = 1
    for dim in shape:
        expected *= dim
    if len(values) != expected:
        dims = " x ".join(str(d) for d in shape)
        raise InvalidInput(f"expected {dims} = {expected} values, got {len(values)}", field=field)
    return np.asarray(values, dtype=np.float32).reshape(shape)


def _image_size(message: pb.LiftRequest | pb.StreamConfig) -> tuple[float, float] | None:
    if not message.HasField("image_size"):
        return None
    return (message.image_size.width, message.image_size.height)


def _options(message: pb.LiftRequest | pb.StreamConfig, prefix: str) -> LiftOptions:
    fmt = enum_name(pb.Format, message.format, "FORMAT_")
    normalization = enum_name(pb.Normalization, message.normalization, "NORMALIZATION_")
    return LiftOptions(
        format=parse_format(fmt, field=prefix + "format"),
        image_size=_image_size(message),
        normalization=parse_normalization(normalization, field=prefix + "normalization"),
        flip=message.flip if message.HasField("flip") else True,
        rootrel=message.rootrel,
        pixels=message.pixels if message.HasField("pixels") else None,
        overlap=message.overlap if isinstance(message, pb.LiftRequest) and message.HasField("overlap") else None,
    )


def lift_input(request: pb.LiftRequest) -> tuple[list[Track], LiftOptions]:
    """Decode a ``LiftRequest`` into the arguments of ``Lifter.lift``."""
    tracks = []
    for i, track in enumerate(request.tracks):
        k = track.keypoints
        field = f"tracks[{i}].keypoints"
        array = packed(k.values, (k.frames, k.joints, k.channels), f"{field}.values")
        tracks.append(Track(track.id or str(i), array, field))
    return tracks, _options(request, "")


def stream_options(request: pb.StreamRequest) -> StreamOptions:
    """Decode the first ``StreamRequest``, which must hold a ``StreamConfig``."""
    if request.WhichOneof("kind") != "config":
        raise InvalidInput("the first message of a stream must be its config", field="config")
    c = request.config
    mode = enum_name(pb.StreamMode, c.mode, "STREAM_MODE_")
    return StreamOptions(
        lift=_options(c, "config."),
        window=c.window or None,
        hop=c.hop or None,
        mode=parse_mode(mode, field="config.mode"),
        lookahead=c.lookahead,
        track_expiry_s=c.track_expiry_s or None,
    )


def stream_frames(request: pb.StreamRequest) -> list[TrackFrame]:
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


def _joints(array: Array) -> pb.Joints3D:
    return pb.Joints3D(frames=array.shape[0], joints=array.shape[1], values=array.ravel().tolist())


def _model(info: ModelInfo) -> pb.ModelRef:
    return pb.ModelRef(name=info.name, config=info.config, trained=info.trained)


def lift_response(result: LiftResult, request_id: str, info: ModelInfo) -> pb.LiftResponse:
    """Encode a ``LiftResult`` as a ``LiftResponse`` (floats as computed: float32, not rounded)."""
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
        latency=pb.Latency(**asdict(result.timing)),
        model=_model(info),
    )


def stream_started(plan: StreamPlan, coordinates: dict[str, str], info: ModelInfo) -> pb.StreamResponse:
    """The ``StreamResponse`` that opens every stream: the configuration in effect."""
    started = pb.StreamStarted(
        window=plan.window,
        hop=plan.hop,
        mode=pb.StreamMode.Value(f"STREAM_MODE_{plan.mode.upper()}"),
        lookahead=plan.lookahead,
        track_expiry_s=plan.expiry_s,
        joint_names=list(JOINT_NAMES),
        coordinates=pb.Coordinates(**coordinates),
        model=_model(info),
    )
    return pb.StreamResponse(started=started)


def frame_answer(answer: FrameAnswer) -> pb.StreamResponse:
    """One ``StreamResponse`` carrying a ``FrameAnswer``."""
    message = pb.FrameAnswer(
        track_id=answer.track_id,
        frame_index=answer.frame_index,
        timestamp_s=answer.timestamp_s,
        joints3d=_joints(answer.joints3d[None]),
        joints3d_px=None if answer.joints3d_px is None else _joints(answer.joints3d_px[None]),
        lookahead=answer.lookahead,
        window_frames=answer.window_frames,
        latency=pb.StreamLatency(**asdict(answer.latency)),
        skipped=answer.skipped,
        skipped_total=answer.skipped_total,
    )
    return pb.StreamResponse(frame=message)
