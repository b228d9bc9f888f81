"""gRPC Lift, health and reflection through a real grpc.aio client against the session's real service
(uvicorn + gRPC in one process) on the tiny model; Lift answers what POST /lift answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.api.pb.motionlift.v1 import lift_pb2_grpc
from service.core.keypoints import JOINT_NAMES
from tests.data import NEGATIVE, walk
from tests.rpc import SIZE, joints, keypoints, rpc_error, trailing


@pytest.fixture
async def stub(grpc_target: str) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        yield lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated


async def test_lift_answers_what_rest_answers(stub: Any, rest_url: str) -> None:
    long, short = walk(300), walk(40)[::-1]
    body: dict[str, Any] = {
        "tracks": [{"id": "a", "keypoints": long}, {"id": "b", "keypoints": short}],
        "format": "coco",
    }
    body["image_size"] = [1920, 1080]
    async with httpx.AsyncClient(timeout=60) as client:
        rest = (await client.post(f"{rest_url}/lift", json=body)).json()
    request = pb.LiftRequest(
        tracks=[pb.Track(id="a", keypoints=keypoints(long)), pb.Track(id="b", keypoints=keypoints(short))],
        format=pb.FORMAT_COCO,
        image_size=SIZE,
    )
    answer = await stub.Lift(request, metadata=(("x-request-id", "grpc-1"),), timeout=60)
    assert answer.request_id == "grpc-1"
    assert [t.id for t in answer.tracks] == ["a", "b"]
    for got, want in zip(answer.tracks, rest["tracks"], strict=True):
        # Both edges send the float32 values themselves (REST as their shortest exact text).
        assert joints(got.joints3d).tolist() == np.asarray(want["joints3d"], np.float32).tolist()
        assert joints(got.joints3d_px).tolist() == np.asarray(want["joints3d_px"], np.float32).tolist()
    assert list(answer.joint_names) == list(JOINT_NAMES)
    assert {"units": answer.coordinates.units, "space": answer.coordinates.space} == {
        k: rest["coordinates"][k] for k in ("units", "space")
    }
    assert (answer.coordinates.root, answer.coordinates.axes) == (
        rest["coordinates"]["root"],
        rest["coordinates"]["axes"],
    )
    lat = answer.latency
    assert (lat.windows, lat.batches, lat.batch_size) == (rest["windows"], rest["batches"], rest["batch_size"])
    assert lat.inference_ms > 0
    assert lat.preprocess_ms + lat.queue_ms + lat.inference_ms + lat.postprocess_ms <= lat.total_ms
    assert (answer.model.name, answer.model.config, answer.model.trained) == ("dstformer", "tiny", True)


async def test_lift_options_as_rest(stub: Any, rest_url: str) -> None:
    frames = walk(30)
    body = {
        "keypoints": frames,
        "format": "h36m",
        "image_size": [1920, 1080],
        "flip": False,
        "rootrel": True,
        "pixels": False,
        "overlap": 5,
    }
    async with httpx.AsyncClient(timeout=60) as client:
        rest = (await client.post(f"{rest_url}/lift", json=body)).json()
    request = pb.LiftRequest(
        tracks=[pb.Track(keypoints=keypoints(frames))],
        format=pb.FORMAT_H36M,
        image_size=SIZE,
        flip=False,
        rootrel=True,
        pixels=False,
        overlap=5,
    )
    answer = await stub.Lift(request, timeout=60)
    (track,) = answer.tracks
    assert track.id == "0" and not track.HasField("joints3d_px")
    assert joints(track.joints3d).tolist() == np.asarray(rest["joints3d"], np.float32).tolist()
    assert answer.latency.windows == 1  # no flipped copy
    assert answer.coordinates.root == rest["coordinates"]["root"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"format": pb.FORMAT_UNSPECIFIED}, "format", "set the keypoint format"),
        ({"format": 9}, "format", "unknown keypoint format 9; expected one of h36m, coco, halpe26"),
        ({"normalization": pb.NORMALIZATION_PIXEL, "image_size": None}, "image_size", "pixel normalization needs"),
        ({"overlap": 243}, "overlap", "overlap must be between 0 and 242"),
        ({"tracks": []}, "tracks", "send at least one track"),
        ({"values": 17 * 3 * 2 - 1}, "tracks[0].keypoints.values", "expected 2 x 17 x 3 = 102 values, got 101"),
        ({"score": -1.5}, "tracks[0].keypoints[1][4][2]", NEGATIVE),
        ({"joints": 26}, "tracks[0].keypoints[0]", "format 'coco' has 17 joints per frame, got 26"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    stub: Any, change: dict[str, Any], field: str, message: str
) -> None:
    frames = np.full((2, change.get("joints", 17), 3), 0.5, np.float32) * 1000
    frames[..., 2] = 0.9
    if "score" in change:
        frames[1, 4, 2] = change["score"]
    k = keypoints(frames)
    if "values" in change:
        del k.values[change["values"] :]
    fields: dict[str, Any] = {"tracks": [pb.Track(keypoints=k)], "format": pb.FORMAT_COCO, "image_size": SIZE}
    fields.update({key: v for key, v in change.items() if key in ("format", "normalization", "overlap", "tracks")})
    if "image_size" in change:
        del fields["image_size"]
    error = await rpc_error(stub.Lift(pb.LiftRequest(**fields), timeout=60))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}: {message}"), error.details()
    assert trailing(error)["motionlift-field"] == field
    assert len(trailing(error)["x-request-id"]) == 32


async def test_a_deadline_shorter_than_the_work(stub: Any) -> None:
    request = pb.LiftRequest(tracks=[pb.Track(keypoints=keypoints(walk(2000)))], format=pb.FORMAT_COCO, image_size=SIZE)
    error = await rpc_error(stub.Lift(request, timeout=0.001))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_health_is_serving_once_ready(grpc_target: str) -> None:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "motionlift.v1.Lifter"):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        error = await rpc_error(health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10))
        assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_services(grpc_target: str) -> None:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = reflect.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        listed = await call.read()
        names = {s.name for s in listed.list_services_response.service}
        assert names == {"motionlift.v1.Lifter", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
        await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol="motionlift.v1.Lifter"))
        files = await call.read()
        await call.done_writing()
    proto = descriptor_pb2.FileDescriptorProto.FromString(files.file_descriptor_response.file_descriptor_proto[0])
    assert (proto.name, proto.package) == ("motionlift/v1/lift.proto", "motionlift.v1")
    assert [m.name for m in proto.service[0].method] == ["Lift", "LiftStream"]
