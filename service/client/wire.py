"""Encoding a ``LiftCall`` for each transport and decoding the answers (pure functions, no I/O).

REST: the ``POST /lift`` JSON body and answer (README, "Input"). gRPC: ``motionlift.v1`` messages
(proto/motionlift/v1/lift.proto), arrays as packed float32 with their shape. Options go by their field names,
which are the wire names on both; enums by the proto's naming (``coco`` is ``FORMAT_COCO``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

import numpy as np

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.client.types import FrameResult, LiftAnswer, LiftCall, StreamStarted
from service.core.arrays import as_array
from service.core.backend import Array
from service.core.frames import FrameLatency
from service.core.options import LiftOptions
from service.core.results import Timing, TrackResult
from service.core.stream_options import StreamOptions

# Option fields that travel as proto enums, with the prefix of their value names.
ENUMS: dict[str, tuple[Any, str]] = {
    "format": (pb.Format, "FORMAT_"),
    "normalization": (pb.Normalization, "NORMALIZATION_"),
    "mode": (pb.StreamMode, "STREAM_MODE_"),
    "policy": (pb.StreamPolicy, "STREAM_POLICY_"),
}

# ---------------------------------------------------------------------------------------------- REST


def options_json(options: LiftOptions) -> dict[str, Any]:
    """The given (not ``None``) options as JSON fields."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items() if v is not None}


def rest_body(call: LiftCall) -> bytes:
    """The JSON body of ``POST /lift``."""
    body = options_json(call.options)
    if call.single:
        body["keypoints"] = call.tracks[0][1].tolist()
    else:
        body["tracks"] = [
            {"keypoints": kp.tolist(), **({} if tid is None else {"id": tid}), **({"start": start} if start else {})}
            for tid, kp, start in call.entries()
        ]
    return json.dumps(body, separators=(",", ":")).encode()


def _maybe(value: Any) -> Array | None:
    return None if value is None else np.asarray(value, dtype=np.float32)


def rest_answer(payload: Mapping[str, Any], round_trip_ms: float) -> LiftAnswer:
    """Decode the JSON answer of ``POST /lift`` (single-sequence or multi-track)."""
    tracks = payload.get("tracks") or [{"id": "0", **payload}]
    return LiftAnswer(
        request_id=payload["request_id"],
        tracks=tuple(
            TrackResult(
                str(t["id"]),
                np.asarray(t["joints3d"], np.float32),
                _maybe(t.get("joints3d_px")),
                int(t.get("start", 0)),
                tuple(int(f) for f in t.get("filled", ())),
            )
            for t in tracks
        ),
        joint_names=tuple(payload["joint_names"]),
        coordinates=dict(payload["coordinates"]),
        latency=Timing.from_json(payload),
        model=dict(payload["model"]),
        round_trip_ms=round_trip_ms,
        transport="rest",
    )


# ---------------------------------------------------------------------------------------------- gRPC


def _fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Option values as proto field values: enums by name, ``image_size`` as its message, ``None`` unset."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name in ENUMS:
            enum, prefix = ENUMS[name]
            value = enum.Value(prefix + str(value).upper())
        elif name == "image_size":
            value = pb.ImageSize(width=value[0], height=value[1])
        out[name] = value
    return out


def lift_request(call: LiftCall) -> pb.LiftRequest:
    """The ``LiftRequest`` of ``call``."""
    tracks = [
        pb.Track(
            id=tid or "",
            keypoints=pb.Keypoints(
                frames=kp.shape[0], joints=kp.shape[1], channels=kp.shape[2], values=kp.ravel().tolist()
            ),
            start=start,
        )
        for tid, kp, start in call.entries()
    ]
    return pb.LiftRequest(tracks=tracks, **_fields(asdict(call.options)))


def _joints(message: pb.Joints3D) -> Array:
    return np.array(message.values, dtype=np.float32).reshape(message.frames, message.joints, 3)


def _coordinates(message: pb.Coordinates) -> dict[str, str]:
    return {"units": message.units, "space": message.space, "root": message.root, "axes": message.axes}


def _model(message: pb.ModelRef) -> dict[str, Any]:
    return {"name": message.name, "config": message.config, "trained": message.trained}


def lift_answer(response: pb.LiftResponse, round_trip_ms: float) -> LiftAnswer:
    """Decode a ``LiftResponse``."""
    tracks = tuple(
        TrackResult(
            t.id,
            _joints(t.joints3d),
            _joints(t.joints3d_px) if t.HasField("joints3d_px") else None,
            t.start,
            tuple(t.filled),
        )
        for t in response.tracks
    )
    return LiftAnswer(
        request_id=response.request_id,
        tracks=tracks,
        joint_names=tuple(response.joint_names),
        coordinates=_coordinates(response.coordinates),
        latency=Timing.from_fields(response.latency),
        model=_model(response.model),
        round_trip_ms=round_trip_ms,
        transport="grpc",
    )


def stream_config(options: StreamOptions) -> pb.StreamRequest:
    """The first ``StreamRequest`` of a stream (the service checks the values; ``None`` = its default)."""
    own = {f.name: getattr(options, f.name) for f in fields(options) if f.name != "lift"}
    lift = {k: v for k, v in asdict(options.lift).items() if k != "overlap"}
    return pb.StreamRequest(config=pb.StreamConfig(**_fields({**lift, **own})))


def stream_frame(tracks: Any, *, frame_index: int | None = None, timestamp_s: float | None = None) -> pb.StreamRequest:
    """One video frame: ``{track_id: [J, C]}``, or one pose ``[J, C]`` (track ``"0"``)."""
    if not isinstance(tracks, Mapping):
        tracks = {"0": tracks}
    frames = []
    for i, (tid, pose) in enumerate(tracks.items()):
        kp = as_array(pose, ndim=2, field=f"frame.tracks[{i}].keypoints")
        frames.append(
            pb.TrackFrame(
                track_id=str(tid),
                joints=kp.shape[0],
                channels=kp.shape[1],
                keypoints=kp.ravel().tolist(),
                frame_index=frame_index,
                timestamp_s=timestamp_s,
            )
        )
    return pb.StreamRequest(frame=pb.StreamFrame(tracks=frames))


def stream_started(response: pb.StreamResponse) -> StreamStarted:
    """Decode the ``StreamStarted`` that opens every stream; ``ValueError`` if the message is not one."""
    if response.WhichOneof("kind") != "started":
        raise ValueError("the service did not open the stream with StreamStarted")
    s = response.started
    return StreamStarted(
        window=s.window,
        hop=s.hop,
        mode=pb.StreamMode.Name(s.mode).removeprefix("STREAM_MODE_").lower(),
        lookahead=s.lookahead,
        track_expiry_s=s.track_expiry_s,
        policy=pb.StreamPolicy.Name(s.policy).removeprefix("STREAM_POLICY_").lower().replace("unspecified", "latest"),
        joint_names=tuple(s.joint_names),
        coordinates=_coordinates(s.coordinates),
        model=_model(s.model),
        smoothing=s.smoothing or "none",
        smoothing_latency_frames=s.smoothing_latency_frames,
    )


def frame_result(response: pb.StreamResponse, received_at: float) -> FrameResult:
    """Decode a ``StreamResponse`` carrying a ``FrameAnswer``."""
    f = response.frame
    return FrameResult(
        track_id=f.track_id,
        frame_index=f.frame_index,
        timestamp_s=f.timestamp_s if f.HasField("timestamp_s") else None,
        joints3d=_joints(f.joints3d)[0],
        joints3d_px=_joints(f.joints3d_px)[0] if f.HasField("joints3d_px") else None,
        lookahead=f.lookahead,
        window_frames=f.window_frames,
        latency=FrameLatency.from_fields(f.latency),
        skipped=f.skipped,
        skipped_total=f.skipped_total,
        received_at=received_at,
    )
