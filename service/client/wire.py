"""Encoding a ``LiftCall`` for each transport and decoding the answers (pure functions, no I/O).

REST: the ``POST /lift`` JSON body and answer (README, "Input"). gRPC: ``motionlift.v1`` messages
(proto/motionlift/v1/lift.proto), arrays as packed float32 with their shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.client.types import (
    Array,
    FrameResult,
    LiftAnswer,
    LiftCall,
    Mode,
    Normalization,
    ServerLatency,
    StreamLatency,
    StreamStarted,
    TrackResult,
    as_array,
)
from service.errors import InvalidInput

FORMATS = {"h36m": pb.FORMAT_H36M, "coco": pb.FORMAT_COCO, "halpe26": pb.FORMAT_HALPE26}
NORMALIZATIONS = {None: pb.NORMALIZATION_UNSPECIFIED, "pixel": pb.NORMALIZATION_PIXEL}
NORMALIZATIONS.update({"crop": pb.NORMALIZATION_CROP, "none": pb.NORMALIZATION_NONE})
MODES = {"causal": pb.STREAM_MODE_CAUSAL, "lookahead": pb.STREAM_MODE_LOOKAHEAD}


# ---------------------------------------------------------------------------------------------- REST


def rest_body(call: LiftCall) -> bytes:
    """The JSON body of ``POST /lift``."""
    body: dict[str, Any] = {"format": call.format, "flip": call.flip, "rootrel": call.rootrel}
    if call.single:
        body["keypoints"] = call.tracks[0][1].tolist()
    else:
        body["tracks"] = [{"keypoints": kp.tolist(), **({} if tid is None else {"id": tid})} for tid, kp in call.tracks]
    optional: dict[str, Any] = {"image_size": call.image_size, "normalization": call.normalization}
    optional.update(pixels=call.pixels, overlap=call.overlap)
    body.update({k: list(v) if isinstance(v, tuple) else v for k, v in optional.items() if v is not None})
    return json.dumps(body, separators=(",", ":")).encode()


def _maybe(value: Any) -> Array | None:
    return None if value is None else np.asarray(value, dtype=np.float32)


def rest_answer(payload: Mapping[str, Any], round_trip_ms: float) -> LiftAnswer:
    """Decode the JSON answer of ``POST /lift`` (single-sequence or multi-track)."""
    if payload.get("tracks") is not None:
        tracks = tuple(
            TrackResult(str(t["id"]), np.asarray(t["joints3d"], np.float32), _maybe(t.get("joints3d_px")))
            for t in payload["tracks"]
        )
    else:
        tracks = (TrackResult("0", np.asarray(payload["joints3d"], np.float32), _maybe(payload.get("joints3d_px"))),)
    lat = payload["latency_ms"]
    latency = ServerLatency(
        preprocess_ms=lat["preprocess"],
        queue_ms=lat["queue"],
        inference_ms=lat["inference"],
        postprocess_ms=lat["postprocess"],
        total_ms=lat["total"],
        batch_size=payload["batch_size"],
        batches=payload["batches"],
        windows=payload["windows"],
    )
    return LiftAnswer(
        request_id=payload["request_id"],
        tracks=tracks,
        joint_names=tuple(payload["joint_names"]),
        coordinates=dict(payload["coordinates"]),
        latency=latency,
        model=dict(payload["model"]),
        round_trip_ms=round_trip_ms,
        transport="rest",
    )


# ---------------------------------------------------------------------------------------------- gRPC


def _format(layout: str, field: str) -> Any:
    if layout not in FORMATS:
        raise InvalidInput(f"unknown format {layout!r}; expected one of {', '.join(FORMATS)}", field=field)
    return FORMATS[layout]


def _normalization(value: Normalization | None, field: str) -> Any:
    if value not in NORMALIZATIONS:
        raise InvalidInput(f"unknown normalization {value!r}; expected pixel, crop or none", field=field)
    return NORMALIZATIONS[value]


def _size(size: tuple[float, float] | None) -> Any:
    return None if size is None else pb.ImageSize(width=size[0], height=size[1])


def lift_request(call: LiftCall) -> Any:
    """The ``LiftRequest`` of ``call``."""
    tracks = [
        pb.Track(
            id=tid or "",
            keypoints=pb.Keypoints(
                frames=kp.shape[0], joints=kp.shape[1], channels=kp.shape[2], values=kp.ravel().tolist()
            ),
        )
        for tid, kp in call.tracks
    ]
    return pb.LiftRequest(
        tracks=tracks,
        format=_format(call.format, "format"),
        image_size=_size(call.image_size),
        normalization=_normalization(call.normalization, "normalization"),
        flip=call.flip,
        rootrel=call.rootrel,
        pixels=call.pixels,
        overlap=call.overlap,
    )


def _joints(message: Any) -> Array:
    return np.array(message.values, dtype=np.float32).reshape(message.frames, message.joints, 3)


def _coordinates(message: Any) -> dict[str, str]:
    return {"units": message.units, "space": message.space, "root": message.root, "axes": message.axes}


def _model(message: Any) -> dict[str, Any]:
    return {"name": message.name, "config": message.config, "trained": message.trained}


def lift_answer(response: Any, round_trip_ms: float) -> LiftAnswer:
    """Decode a ``LiftResponse``."""
    tracks = tuple(
        TrackResult(t.id, _joints(t.joints3d), _joints(t.joints3d_px) if t.HasField("joints3d_px") else None)
        for t in response.tracks
    )
    lat = response.latency
    latency = ServerLatency(
        lat.preprocess_ms, lat.queue_ms, lat.inference_ms, lat.postprocess_ms, lat.total_ms,
        lat.batch_size, lat.batches, lat.windows,
    )  # fmt: skip
    return LiftAnswer(
        request_id=response.request_id,
        tracks=tracks,
        joint_names=tuple(response.joint_names),
        coordinates=_coordinates(response.coordinates),
        latency=latency,
        model=_model(response.model),
        round_trip_ms=round_trip_ms,
        transport="grpc",
    )


def stream_config(
    *,
    format: str,
    image_size: tuple[float, float] | None = None,
    normalization: Normalization | None = None,
    window: int | None = None,
    hop: int | None = None,
    mode: Mode = "causal",
    lookahead: int = 0,
    flip: bool = True,
    rootrel: bool = False,
    pixels: bool | None = None,
    track_expiry_s: float | None = None,
) -> Any:
    """The first ``StreamRequest`` of a stream (the service checks the values; ``None`` = its default)."""
    if mode not in MODES:
        raise InvalidInput(f"unknown mode {mode!r}; expected causal or lookahead", field="config.mode")
    config = pb.StreamConfig(
        format=_format(format, "config.format"),
        image_size=_size(image_size),
        normalization=_normalization(normalization, "config.normalization"),
        window=window or 0,
        hop=hop or 0,
        mode=MODES[mode],
        lookahead=lookahead,
        flip=flip,
        rootrel=rootrel,
        pixels=pixels,
        track_expiry_s=track_expiry_s or 0.0,
    )
    return pb.StreamRequest(config=config)


def stream_frame(tracks: Any, *, frame_index: int | None = None, timestamp_s: float | None = None) -> Any:
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


def stream_started(response: Any) -> StreamStarted:
    """Decode the ``StreamStarted`` that opens every stream; ``ValueError`` if the message is not one."""
    if response.WhichOneof("kind") != "started":
        raise ValueError("the service did not open the stream with StreamStarted")
    s = response.started
    return StreamStarted(
        window=s.window,
        hop=s.hop,
        mode="lookahead" if s.mode == pb.STREAM_MODE_LOOKAHEAD else "causal",
        lookahead=s.lookahead,
        track_expiry_s=s.track_expiry_s,
        joint_names=tuple(s.joint_names),
        coordinates=_coordinates(s.coordinates),
        model=_model(s.model),
    )


def frame_result(response: Any, received_at: float) -> FrameResult:
    """Decode a ``StreamResponse`` carrying a ``FrameAnswer``."""
    f = response.frame
    lat = f.latency
    return FrameResult(
        track_id=f.track_id,
        frame_index=f.frame_index,
        timestamp_s=f.timestamp_s if f.HasField("timestamp_s") else None,
        joints3d=_joints(f.joints3d)[0],
        joints3d_px=_joints(f.joints3d_px)[0] if f.HasField("joints3d_px") else None,
        lookahead=f.lookahead,
        window_frames=f.window_frames,
        latency=StreamLatency(lat.total_ms, lat.lookahead_ms, lat.queue_ms, lat.inference_ms, lat.batch_size),
        skipped=f.skipped,
        skipped_total=f.skipped_total,
        received_at=received_at,
    )
