"""The Python client (sync and asyncio, REST and gRPC) against the session's real service on the tiny model."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from service.client import AsyncMotionLiftClient, MotionLiftClient
from service.errors import DeadlineExceeded, InvalidInput, Unavailable
from tests.conftest import Served
from tests.data import NEGATIVE, walk

SIZE = (1920.0, 1080.0)


def post(rest_url: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{rest_url}/lift", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


@pytest.fixture(params=["rest", "grpc"])
def client(request: pytest.FixtureRequest, served: Served) -> Iterator[MotionLiftClient]:
    url, grpc = (served.rest_url, None) if request.param == "rest" else (None, served.grpc_target)
    with MotionLiftClient(url, grpc=grpc) as c:
        yield c


def test_lift_gives_what_post_lift_gives(client: MotionLiftClient, rest_url: str) -> None:
    frames = walk(40)
    direct = post(rest_url, {"keypoints": frames, "format": "coco", "image_size": list(SIZE)})
    answer = client.lift(np.asarray(frames), format="coco", image_size=SIZE, request_id="client-1")
    assert answer.request_id == "client-1"
    assert answer.joints3d.shape == (40, 17, 3) and answer.joints3d.dtype == np.float32
    (track,) = answer.tracks
    assert track.joints3d_px is not None
    # The same values over both (tolerances: at most REST's rounding, should it round its JSON numbers).
    np.testing.assert_allclose(track.joints3d, np.asarray(direct["joints3d"], np.float32), rtol=0, atol=5e-7)
    np.testing.assert_allclose(track.joints3d_px, np.asarray(direct["joints3d_px"], np.float32), rtol=0, atol=5e-4)
    assert list(answer.joint_names) == direct["joint_names"] and answer.coordinates == direct["coordinates"]
    lat = answer.latency
    assert (lat.windows, lat.batches) == (direct["windows"], direct["batches"]) and lat.inference_ms > 0
    assert answer.round_trip_ms >= lat.total_ms
    assert answer.model == direct["model"]


def test_tracks_and_options(client: MotionLiftClient, rest_url: str) -> None:
    a, b = walk(30), walk(12)[::-1]
    options: dict[str, Any] = {"flip": False, "rootrel": True, "overlap": 5}
    direct = post(rest_url, {"tracks": [{"id": "a", "keypoints": a}, {"id": "b", "keypoints": b}],
                             "format": "coco", "image_size": list(SIZE), **options})  # fmt: skip
    answer = client.lift(tracks={"a": a, "b": b}, format="coco", image_size=SIZE, pixels=False, **options)
    assert [t.id for t in answer.tracks] == ["a", "b"] and answer.latency.windows == 2  # no flipped copies
    for got, want in zip(answer.tracks, direct["tracks"], strict=True):
        np.testing.assert_allclose(got.joints3d, np.asarray(want["joints3d"], np.float32), rtol=0, atol=5e-7)
        assert got.joints3d_px is None
    with pytest.raises(ValueError, match="2 tracks"):
        _ = answer.joints3d


def test_invalid_input_carries_the_field(client: MotionLiftClient) -> None:
    frames = np.asarray(walk(3))
    frames[1, 4, 2] = -1.5
    with pytest.raises(InvalidInput) as info:
        client.lift(frames, format="coco", image_size=SIZE)
    error = info.value
    prefix = "" if client._grpc is None else "tracks[0]."  # gRPC always sends tracks
    assert (error.field, error.message) == (f"{prefix}keypoints[1][4][2]", NEGATIVE)
    assert error.http_status == 422 and any(n.startswith("request id: ") for n in error.__notes__)
    with pytest.raises(InvalidInput) as info:
        client.lift(frames, format="coco", normalization="pixel")  # without an image size
    assert info.value.field == "image_size"
    with pytest.raises(InvalidInput) as shape:
        client.lift(frames[0], format="coco")  # checked before sending: the wire needs the shape
    assert shape.value.field == "keypoints"


def test_deadline_and_unreachable(served: Served) -> None:
    with MotionLiftClient(grpc=served.grpc_target) as c, pytest.raises(DeadlineExceeded):
        c.lift(walk(2000), format="coco", image_size=SIZE, timeout_s=0.001)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with MotionLiftClient(f"http://127.0.0.1:{port}") as c, pytest.raises(Unavailable, match="cannot reach"):
            c.lift(walk(2), format="coco", image_size=SIZE)
        with MotionLiftClient(grpc=f"127.0.0.1:{port}", timeout_s=5) as c, pytest.raises(Unavailable):
            c.lift(walk(2), format="coco", image_size=SIZE)
    with pytest.raises(ValueError, match="exactly one"):
        MotionLiftClient("http://127.0.0.1:1", grpc="127.0.0.1:2")


async def test_async_lift_over_both_transports(served: Served) -> None:
    frames = walk(20)
    answers = []
    for url, grpc in ((served.rest_url, None), (None, served.grpc_target)):
        async with AsyncMotionLiftClient(url, grpc=grpc) as c:
            answers.append(await c.lift(frames, format="coco", image_size=SIZE))
            with pytest.raises(InvalidInput) as info:
                await c.lift(frames, format="coco", overlap=500, image_size=SIZE)
            assert info.value.field == "overlap"
    rest, rpc = answers
    assert (rest.transport, rpc.transport) == ("rest", "grpc")
    np.testing.assert_allclose(rest.joints3d, rpc.joints3d, rtol=0, atol=5e-7)


async def test_async_stream_yields_one_answer_per_frame(served: Served) -> None:
    seq = np.asarray(walk(10), np.float32)
    async with (
        AsyncMotionLiftClient(grpc=served.grpc_target) as c,
        c.stream(format="coco", image_size=SIZE, window=4, track_expiry_s=30) as stream,
    ):
        assert stream.started is not None
        assert (stream.started.window, stream.started.mode, stream.started.model["config"]) == (4, "causal", "tiny")
        answers = aiter(stream)
        got = []
        for t, pose in enumerate(seq):  # in lockstep, so the skip policy never drops a frame
            await stream.send({"p": pose}, timestamp_s=t / 30)
            got.append(await anext(answers))
        await stream.done_writing()
        assert [a async for a in answers] == []
        unary = await c.lift(tracks=[seq[6:10]], format="coco", image_size=SIZE)
    assert [(a.track_id, a.frame_index, a.timestamp_s, a.skipped) for a in got] == [
        ("p", t, t / 30, 0) for t in range(10)
    ]
    assert all(a.joints3d.shape == (17, 3) and a.window_frames == min(4, t + 1) for t, a in enumerate(got))
    # Causal: frame 9 is the last row of the window of frames 6..9.
    np.testing.assert_allclose(got[9].joints3d, unary.tracks[0].joints3d[-1], rtol=0, atol=1e-6)


def test_sync_stream_yields_one_answer_per_frame(served: Served) -> None:
    seq = np.asarray(walk(6), np.float32)
    answered = threading.Semaphore(0)

    def frames() -> Iterator[Any]:
        for t, pose in enumerate(seq):
            if t >= 2:  # lockstep: frame t once frame t - 2 is answered (its window needs frame t - 1)
                assert answered.acquire(timeout=30)
            yield pose

    with MotionLiftClient(grpc=served.grpc_target) as c:
        stream = c.stream(frames(), format="coco", image_size=SIZE, mode="lookahead", lookahead=1, window=4)
        assert (stream.started.mode, stream.started.lookahead) == ("lookahead", 1)
        got = []
        for answer in stream:
            got.append(answer)
            answered.release()
    with MotionLiftClient(served.rest_url) as rest, pytest.raises(ValueError, match="streaming needs gRPC"):
        rest.stream([], format="coco")
    assert [(a.track_id, a.frame_index, a.skipped) for a in got] == [("0", t, 0) for t in range(6)]
    assert [a.lookahead for a in got] == [1, 1, 1, 1, 1, 0]  # the last frame: from the final window


async def test_a_bad_frame_or_config_fails_the_stream_with_the_field(served: Served) -> None:
    seq = np.asarray(walk(2), np.float32)
    bad = seq[1].copy()
    bad[5, 0] = np.nan
    async with AsyncMotionLiftClient(grpc=served.grpc_target) as c:
        async with c.stream(format="coco", image_size=SIZE, window=4) as stream:
            await stream.send({"p": seq[0]})
            await stream.send({"p": seq[1], "q": bad})
            with pytest.raises(InvalidInput) as info:
                async for _ in stream:
                    pass
        assert (info.value.field, info.value.message) == ("frame.tracks[1].keypoints[5]", "a value is NaN or infinite")
        with pytest.raises(InvalidInput) as refused:
            async with c.stream(format="coco", window=4):  # pixel normalisation without an image size
                pass
        assert refused.value.field == "config.image_size"


def test_a_list_of_frames_streams_with_policy_all_and_loses_none(served: Served) -> None:
    """1,000 frames handed over at once (not paced by a camera): the client asks for policy all, the service
    slows the sending down instead of skipping, and every frame is answered."""
    seq = np.asarray(walk(1000), np.float32)
    with MotionLiftClient(grpc=served.grpc_target) as c:
        stream = c.stream(list(seq), format="coco", image_size=SIZE, window=4)
        assert stream.started.policy == "all"
        got = list(stream)
        live = c.stream(iter(seq[:3]), format="coco", image_size=SIZE, window=4)
        assert live.started.policy == "latest"  # a generator may be a camera: the newest frame wins
        list(live)
    assert [a.frame_index for a in got] == list(range(1000))
    assert sum(a.skipped for a in got) == 0
