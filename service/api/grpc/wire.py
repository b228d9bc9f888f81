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
from service.core.options import LiftOptions, parse_format, parse_mode, parse_normalization, parse_policy
from service.core.results import LiftResult
from service.core.stream_options import StreamOptions, StreamPlan
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
    for dim in shape:  # Python ints: a shape whose size overflows int64 is just a wrong count
        expected *= dim
    if len(values) != expected:
        dims = " x ".join(str(d) for d in shape)
        raise InvalidInput(f"expected {dims} = {expected} values, got {len(values)}", field=field)
    return np.asarray(values, dtype=np.float32).reshape(shape)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


VALUES_TAG = bytes([(4 << 3) | 2])  # Keypoints.values: field 4, length-delimited (packed)


def keypoints_array(k: pb.Keypoints, field: str) -> Array:
    """A track's packed keypoints as float32 ``[frames, joints, channels]``; ``InvalidInput`` when the count does
    not match the shape.

    Reading a repeated field element by element costs about 70 ms per 9,000 frames with the GIL held. Protobuf
    writes known fields in field-number order, so the serialised message ends with ``values``' tag, length and
    little-endian floats: they are read from there in one copy (about 2 ms), after checking the tag and length
    are where they must be (unknown fields would follow them; then the slow way is taken)."""
    shape = (k.frames, k.joints, k.channels)
    count = k.frames * k.joints * k.channels  # Python ints: no overflow, whatever the client sent
    if len(k.values) != count:
        return packed(k.values, shape, f"{field}.values")  # raises, naming the counts
    raw = k.SerializeToString()
    head = VALUES_TAG + _varint(4 * count)
    start = len(raw) - 4 * count
    if count and raw[start - len(head) : start] == head:
        return np.frombuffer(raw, dtype="<f4", offset=start).astype(np.float32).reshape(shape)
    return packed(k.values, shape, f"{field}.values")


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
        overlap=_optional(message, "overlap"),
        min_track_frames=_optional(message, "min_track_frames"),
        max_gap_frames=_optional(message, "max_gap_frames"),
        person=str(message.person) if _given(message, "person") else None,
        smoothing=parse_smoothing(message),
        smoothing_window=_optional(message, "smoothing_window"),
        smoothing_cutoff=_number(message, "smoothing_cutoff"),
        smoothing_beta=_number(message, "smoothing_beta"),
        fps=_number(message, "fps"),
        subject_height_m=_number(message, "subject_height_m"),
        root=str(message.root) if _given(message, "root") else None,
        focal_length_px=_number(message, "focal_length_px"),
    )


def _given(message: pb.LiftRequest | pb.StreamConfig, name: str) -> bool:
    """Whether the message has the optional field ``name`` and it is set (a ``StreamConfig`` lacks some)."""
    return name in message.DESCRIPTOR.fields_by_name and message.HasField(name)


def parse_smoothing(message: pb.LiftRequest | pb.StreamConfig) -> str | None:
    return str(message.smoothing) if _given(message, "smoothing") else None


def _number(message: pb.LiftRequest | pb.StreamConfig, name: str) -> float | None:
    """An optional number, None when unset or not a field of this message."""
    return float(getattr(message, name)) if _given(message, name) else None


def _optional(message: pb.LiftRequest | pb.StreamConfig, name: str) -> int | None:
    """An optional integer field, None when unset or not a field of this message."""
    return int(getattr(message, name)) if _given(message, name) else None


def lift_input(request: pb.LiftRequest) -> tuple[list[Track], LiftOptions]:
    """Decode a ``LiftRequest`` into the arguments of ``Lifter.lift``."""
    tracks = []
    for i, track in enumerate(request.tracks):
        field = f"tracks[{i}].keypoints"
        tracks.append(Track(track.id or str(i), keypoints_array(track.keypoints, field), field, track.start))
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
        policy=parse_policy(enum_name(pb.StreamPolicy, c.policy, "STREAM_POLICY_"), field="config.policy"),
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
                start=track.start,
                filled=track.filled,
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
        smoothing=plan.options.smoothing or "none",
        smoothing_latency_frames=plan.smoothing_latency_frames,
        window=plan.window,
        hop=plan.hop,
        mode=pb.StreamMode.Value(f"STREAM_MODE_{plan.mode.upper()}"),
        lookahead=plan.lookahead,
        track_expiry_s=plan.expiry_s,
        policy=pb.StreamPolicy.Value(f"STREAM_POLICY_{plan.policy.upper()}"),
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
