"""Regression tests for what hostile or careless clients sent (issue 12, "Why"), through the session's real
service: every answer is in the service's envelope with a request id, never an impossible answer, never a 500
that the caller caused."""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import time
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.api.pb.motionlift.v1 import lift_pb2_grpc
from tests.conftest import Served
from tests.data import walk
from tests.rpc import SIZE, keypoints, rpc_error

GOOD: dict[str, Any] = {"keypoints": walk(5), "format": "coco", "image_size": [1920, 1080]}
JSON = {"content-type": "application/json"}


def envelope(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["request_id"] == r.headers["x-request-id"] and len(error["request_id"]) >= 16
    return error


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"keypoints": [[[1e30, 500.0, 0.9]] * 17]}, "keypoints[0][0][0]", "coordinate 1e+30 is outside +-1e+06"),
        ({"image_size": [1e-30, 1080]}, "image_size", "image_size [width, height] must be between 1 and 100000"),
        ({"image_size": [1e308, 1080]}, "image_size", "image_size [width, height] must be between 1 and 100000"),
        ({"flip": "yes"}, "flip", "must be true or false, got 'yes'"),
        ({"overlap": "3"}, "overlap", "must be an integer, got '3'"),
        ({"keypoints": None, "tracks": [{"id": True, "keypoints": walk(3)}]}, "tracks[0].id", "a track id is a"),
        ({"keypoints": None, "tracks": [{"id": 2**63, "keypoints": walk(3)}]}, "tracks[0].id", "an integer track id"),
        # orjson reads 2**64 as a float; without a fraction it is an integer id (JSON Schema's), beyond int64.
        ({"keypoints": None, "tracks": [{"id": 2**64, "keypoints": walk(3)}]}, "tracks[0].id", "an integer track id"),
        ({"keypoints": None, "tracks": [{"id": "x" * 129, "keypoints": walk(3)}]}, "tracks[0].id", "a track id has"),
        ({"keypoints": None, "tracks": [{"id": 1, "keypoints": walk(3)}, {"id": "1", "keypoints": walk(3)}]},
         "tracks[1].id", "track id '1' appears twice; ids must be unique"),
        ({"keypoints": None, "tracks": [{"keypoints": walk(3)}, {"id": 0, "keypoints": walk(3)}]},
         "tracks[1].id", "track id '0' appears twice"),
        ({"keypoints": None, "tracks": []}, "tracks", "expected a non-empty list of {id, keypoints}"),
    ],
)  # fmt: skip
def test_values_outside_their_ranges_or_types_are_422(
    rest_url: str, change: dict[str, Any], field: str, message: str
) -> None:
    error = envelope(httpx.post(f"{rest_url}/lift", json={**GOOD, **change}), 422)
    assert (error["code"], error["field"]) == ("invalid_input", field) and error["message"].startswith(message)


def test_a_million_character_track_id_is_refused_not_echoed(rest_url: str) -> None:
    r = httpx.post(
        f"{rest_url}/lift", json={"tracks": [{"id": "x" * 1_000_000, "keypoints": walk(3)}], "format": "coco"}
    )
    error = envelope(r, 422)
    assert error["field"] == "tracks[0].id" and len(r.content) < 1000


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b'{"keypoints": [[[1, 2]', JSON, 400, "bad_request"),
        (b'{"format": "coco", "keypoints": "\xff"}', JSON, 400, "bad_request"),  # not UTF-8
        (b'{"format": "coco", "keypoints": "\\ud800"}', JSON, 400, "bad_request"),  # a lone surrogate
        (b"[" * 5000 + b"]" * 5000, JSON, 400, "bad_request"),  # nesting beyond 1024
        (b"[1, 2]", JSON, 422, "invalid_input"),  # JSON, not the object /lift takes
        (gzip.compress(b'{"format": "coco"}'), {**JSON, "content-encoding": "gzip"}, 415, "unsupported_media_type"),
        (b'{"format": "coco"}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        (b'{"format": "coco"}', {"content-type": "application/json; charset=latin-1"}, 415, "unsupported_media_type"),
    ],
)
def test_bodies_that_are_not_json_get_the_envelope(
    rest_url: str, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    error = envelope(httpx.post(f"{rest_url}/lift", content=content, headers=headers), status)
    assert error["code"] == code


def test_unknown_routes_and_methods_get_the_envelope(rest_url: str) -> None:
    error = envelope(httpx.post(f"{rest_url}/lifts", json=GOOD), 404)
    assert (error["code"], error["message"]) == ("not_found", "not found: POST /lifts")
    assert envelope(httpx.get(f"{rest_url}/nothing"), 404)["code"] == "not_found"
    not_allowed = httpx.get(f"{rest_url}/lift")
    assert envelope(not_allowed, 405)["code"] == "method_not_allowed"
    assert not_allowed.headers["allow"] == "POST"


def test_a_json_client_without_a_content_type_is_read(rest_url: str) -> None:
    r = httpx.post(f"{rest_url}/lift", content=httpx.Request("POST", "/", json=GOOD).content, headers={})
    assert r.status_code == 200, r.text


def _rpc(target: str) -> Any:
    return lift_pb2_grpc.LifterStub(grpc.aio.insecure_channel(target))  # type: ignore[no-untyped-call]  # generated


async def test_grpc_shapes_whose_size_overflows_are_invalid_argument(grpc_target: str) -> None:
    stub = _rpc(grpc_target)
    huge = pb.Keypoints(frames=2**32 - 1, joints=2**32 - 1, channels=2**32 - 1, values=[1.0, 2.0])
    request = pb.LiftRequest(tracks=[pb.Track(keypoints=huge)], format=pb.FORMAT_COCO, image_size=SIZE)
    error = await rpc_error(stub.Lift(request, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("tracks[0].keypoints.values: expected 4294967295 x 4294967295 x 4294967295")


async def test_grpc_request_ids_are_capped(grpc_target: str) -> None:
    stub = _rpc(grpc_target)
    request = pb.LiftRequest(tracks=[pb.Track(keypoints=keypoints(walk(3)))], format=pb.FORMAT_COCO, image_size=SIZE)
    answer = await stub.Lift(request, metadata=(("x-request-id", "r" * 5000),), timeout=10)
    assert answer.request_id == "r" * 128


async def test_grpc_duplicate_and_long_track_ids(grpc_target: str) -> None:
    stub = _rpc(grpc_target)
    k = keypoints(walk(3))
    twice = pb.LiftRequest(tracks=[pb.Track(keypoints=k), pb.Track(id="0", keypoints=k)], format=pb.FORMAT_COCO)
    error = await rpc_error(stub.Lift(twice, timeout=10))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "tracks[1].id: track id '0' appears twice; ids must be unique",
    )


def _frame(index: int | None) -> pb.StreamRequest:
    pose = np.asarray(walk(1)[0], np.float32).ravel()
    track = pb.TrackFrame(track_id="a", joints=17, channels=3, keypoints=pose, frame_index=index)
    return pb.StreamRequest(frame=pb.StreamFrame(tracks=[track]))


async def test_a_stream_frame_index_at_the_int64_edge_is_invalid_argument(grpc_target: str) -> None:
    stub = _rpc(grpc_target)
    config = pb.StreamRequest(config=pb.StreamConfig(format=pb.FORMAT_COCO, image_size=SIZE, window=4))
    call = stub.LiftStream(timeout=10)
    await call.write(config)
    await call.read()  # started
    await call.write(_frame(2**63 - 1))
    error = await rpc_error(call.read())
    assert (error.code(), error.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"frame.tracks[0].frame_index: frame_index must be between 0 and {2**63 - 2}, got {2**63 - 1}",
    )


async def test_short_stream_deadlines_end_in_deadline_exceeded_without_an_error_log(
    grpc_target: str, caplog: pytest.LogCaptureFixture
) -> None:
    stub = _rpc(grpc_target)

    async def requests() -> Any:
        yield pb.StreamRequest(config=pb.StreamConfig(format=pb.FORMAT_COCO, image_size=SIZE))
        for _ in range(40):
            yield _frame(None)
            await asyncio.sleep(0.002)

    statuses = []
    with caplog.at_level(logging.ERROR, logger="service"):
        for timeout in (0.001, 0.002, 0.004, 0.01, 0.03, 0.06) * 10:
            call = stub.LiftStream(requests(), timeout=timeout)
            with pytest.raises(grpc.aio.AioRpcError):
                async for _ in call:
                    pass
            statuses.append((await call.code(), await call.details()))
    assert [r.getMessage() for r in caplog.records] == []
    # DEADLINE_EXCEEDED from the service or from grpc; grpc's client core may also report its own INTERNAL when a
    # deadline cuts a batch in flight, but the service never answers INTERNAL here.
    assert all(
        code == grpc.StatusCode.DEADLINE_EXCEEDED or details == "Internal error from Core" for code, details in statuses
    )
    assert sum(code == grpc.StatusCode.DEADLINE_EXCEEDED for code, _ in statuses) >= 6


async def test_short_unary_deadlines_end_in_deadline_exceeded_without_an_error_log(
    grpc_target: str, caplog: pytest.LogCaptureFixture
) -> None:
    stub = _rpc(grpc_target)
    request = pb.LiftRequest(tracks=[pb.Track(keypoints=keypoints(walk(243)))], format=pb.FORMAT_COCO, image_size=SIZE)
    codes = []
    with caplog.at_level(logging.ERROR, logger="service"):
        for timeout in (0.001, 0.002, 0.004, 0.01, 0.03, 0.06) * 10:
            try:
                await stub.Lift(request, timeout=timeout)
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
    assert [r.getMessage() for r in caplog.records] == []
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED}, codes
    assert codes.count(grpc.StatusCode.DEADLINE_EXCEEDED) >= 10


def test_requests_refused_before_the_core_are_counted_by_protocol(served: Served) -> None:
    def count(outcome: str) -> float:
        for line in httpx.get(f"{served.rest_url}/metrics").text.splitlines():
            if line.startswith(f'motionlift_requests_total{{outcome="{outcome}",protocol="rest"}} '):
                return float(line.split()[-1])
        return 0.0

    before = {o: count(o) for o in ("bad_request", "unsupported_media_type", "invalid_input")}
    httpx.post(f"{served.rest_url}/lift", content=b"{", headers=JSON)
    httpx.post(f"{served.rest_url}/lift", content=b"{}", headers={"content-type": "text/csv"})
    httpx.post(f"{served.rest_url}/lift", json={**GOOD, "flip": 1})
    assert {o: count(o) - before[o] for o in before} == {
        "bad_request": 1.0,
        "unsupported_media_type": 1.0,
        "invalid_input": 1.0,
    }


def test_a_client_that_leaves_mid_body_is_counted_cancelled_without_an_error_log(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    def cancelled() -> float:
        for line in httpx.get(f"{served.rest_url}/metrics").text.splitlines():
            if line.startswith('motionlift_requests_total{outcome="cancelled",protocol="rest"} '):
                return float(line.split()[-1])
        return 0.0

    before = cancelled()
    body = httpx.Request("POST", "/", json=GOOD).content
    port = int(served.rest_url.rsplit(":", 1)[1])
    with caplog.at_level(logging.ERROR), socket.create_connection(("127.0.0.1", port)) as s:
        head = (
            f"POST /lift HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        s.sendall(head.encode() + body[: len(body) // 2])
        time.sleep(0.2)  # let the server read the half it got before the connection closes
    deadline = time.monotonic() + 10
    while cancelled() == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cancelled() == before + 1
    assert [r.getMessage() for r in caplog.records if r.name.startswith("service")] == []
