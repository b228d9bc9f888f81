"""LiftStream through a real grpc.aio client against the session's real service on the tiny model.

Clients send in lockstep (the next frame once the answers it makes due have arrived), so no window is
skipped and every answer can be compared with the unary Lift of exactly the frames of its window.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import numpy as np
import numpy.typing as npt
import pytest

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.api.pb.motionlift.v1 import lift_pb2_grpc
from tests.data import walk
from tests.rpc import SIZE, joints, keypoints, rpc_error

WINDOW = 8


@pytest.fixture
async def stub(grpc_target: str) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        yield lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated


class Stream:
    """One LiftStream call; ``due`` mirrors the server's rule to know how many answers a frame makes due."""

    def __init__(self, stub: Any, **config: Any) -> None:
        config = {"format": pb.FORMAT_COCO, "image_size": SIZE, "window": WINDOW, **config}
        self.config = pb.StreamConfig(**config)
        self.call = stub.LiftStream(timeout=60)
        self.lookahead, self.hop = self.config.lookahead, self.config.hop or 1
        self.count: dict[str, int] = {}
        self.scheduled: dict[str, int] = {}

    async def open(self) -> Any:
        await self.call.write(pb.StreamRequest(config=self.config))
        started = await self.call.read()
        assert started.WhichOneof("kind") == "started"
        return started.started

    async def send(self, poses: dict[str, Any]) -> list[Any]:
        """Send one video frame (track id -> [17, 3] pixels); the answers it makes due."""
        tracks = [
            pb.TrackFrame(track_id=tid, joints=17, channels=3, keypoints=np.asarray(p, np.float32).ravel())
            for tid, p in poses.items()
        ]
        await self.call.write(pb.StreamRequest(frame=pb.StreamFrame(tracks=tracks)))
        due = 0
        for tid in poses:
            self.count[tid] = self.count.get(tid, 0) + 1
            ready = self.count[tid] - self.lookahead - self.scheduled.get(tid, 0)
            if ready >= self.hop:
                due += ready
                self.scheduled[tid] = self.count[tid] - self.lookahead
        return [(await self.call.read()).frame for _ in range(due)]

    async def close(self) -> list[Any]:
        await self.call.done_writing()
        rest = []
        while (response := await self.call.read()) is not grpc.aio.EOF:
            rest.append(response.frame)
        assert await self.call.code() == grpc.StatusCode.OK
        return rest


async def unary(stub: Any, sequences: list[Any], **options: Any) -> list[npt.NDArray[np.float32]]:
    """Lift each sequence (one window each) in one call; joints3d and joints3d_px per sequence."""
    tracks = [pb.Track(keypoints=keypoints(s)) for s in sequences]
    answer = await stub.Lift(
        pb.LiftRequest(tracks=tracks, format=pb.FORMAT_COCO, image_size=SIZE, **options), timeout=60
    )
    return [np.stack([joints(t.joints3d), joints(t.joints3d_px)]) for t in answer.tracks]


def as_arrays(answer: Any) -> npt.NDArray[np.float32]:
    return np.stack([joints(answer.joints3d)[0], joints(answer.joints3d_px)[0]])


async def test_lookahead_equals_the_unary_lift_of_each_window(stub: Any) -> None:
    seq = np.asarray(walk(21), np.float32)
    k, hop = 2, 3
    stream = Stream(stub, mode=pb.STREAM_MODE_LOOKAHEAD, lookahead=k, hop=hop, track_expiry_s=30)
    started = await stream.open()
    assert (started.window, started.hop, started.lookahead, started.track_expiry_s) == (WINDOW, hop, k, 30)
    assert started.mode == pb.STREAM_MODE_LOOKAHEAD and started.model.config == "tiny"
    answers = []
    for p in seq:
        answers += await stream.send({"p": p})
    answers += await stream.close()
    assert [a.frame_index for a in answers] == list(range(21))
    # Frames in groups of `hop`, each group answered by the window ending k frames after the group's last
    # frame; the frames left at the end by the window ending at the last frame.
    ends = [min(t // hop * hop + hop - 1 + k, 20) for t in range(21)]
    ends[18:] = [20, 20, 20]
    assert [a.lookahead for a in answers] == [e - t for t, e in enumerate(ends)]
    assert [a.window_frames for a in answers] == [min(WINDOW, e + 1) for e in ends]
    assert all(a.skipped == 0 and a.latency.batch_size >= 2 for a in answers)
    windows = sorted(set(ends))
    lifted = dict(zip(windows, await unary(stub, [seq[max(0, e - WINDOW + 1) : e + 1] for e in windows]), strict=True))
    for t, (a, e) in enumerate(zip(answers, ends, strict=True)):
        row = t - max(0, e - WINDOW + 1)
        np.testing.assert_allclose(as_arrays(a)[0], lifted[e][0][row], rtol=0, atol=1e-6)
        np.testing.assert_allclose(as_arrays(a)[1], lifted[e][1][row], rtol=0, atol=1e-3)


async def test_causal_answers_use_no_later_frame(stub: Any) -> None:
    seq = np.asarray(walk(12), np.float32)
    other = seq.copy()
    other[6:, :, :2] = seq[6:, :, :2][::-1] + 25  # the same first 6 frames, then different ones
    runs = []
    for frames in (seq, other):
        stream = Stream(stub)
        await stream.open()
        answers = [a for p in frames for a in await stream.send({"p": p})]
        assert await stream.close() == []
        assert [(a.frame_index, a.lookahead) for a in answers] == [(t, 0) for t in range(12)]
        runs.append(np.stack([as_arrays(a) for a in answers]))
    np.testing.assert_array_equal(runs[0][:6], runs[1][:6])
    assert all(np.abs(runs[0][t] - runs[1][t]).max() > 1e-3 for t in range(6, 12))
    # ...and frame t is the last row of the unary lift of its window, the frames up to t.
    lifted = await unary(stub, [seq[max(0, t - WINDOW + 1) : t + 1] for t in range(12)])
    np.testing.assert_allclose(runs[0][:, 0], np.stack([w[0][-1] for w in lifted]), rtol=0, atol=1e-6)


async def test_tracks_and_streams_never_mix(stub: Any) -> None:
    a = np.asarray(walk(10), np.float32)
    b = a[::-1].copy()
    b[..., :2] += 40
    lifted = {
        name: np.stack([w[0][-1] for w in await unary(stub, [s[max(0, t - WINDOW + 1) : t + 1] for t in range(10)])])
        for name, s in (("a", a), ("b", b))
    }

    async def run(tracks: dict[str, str]) -> dict[str, list[Any]]:
        """Stream ``tracks`` (track id -> which sequence), b from its 3rd frame on."""
        stream = Stream(stub)
        await stream.open()
        got: dict[str, list[Any]] = {tid: [] for tid in tracks}
        for t in range(10):
            poses = {tid: (a if src == "a" else b)[t] for tid, src in tracks.items() if src == "a" or t >= 2}
            for answer in await stream.send(poses):
                got[answer.track_id].append(answer)
        await stream.close()
        return got

    # Two streams at once, with the same track ids carrying each other's sequences.
    one, two = await asyncio.gather(run({"x": "a", "y": "b"}), run({"x": "b", "y": "a"}))
    for got, tracks in ((one, {"x": "a", "y": "b"}), (two, {"x": "b", "y": "a"})):
        for tid, src in tracks.items():
            answers = got[tid]
            start = 0 if src == "a" else 2
            assert [x.frame_index for x in answers] == list(range(10 - start))
            want = (
                lifted["a"]
                if src == "a"
                else np.stack(
                    [w[0][-1] for w in await unary(stub, [b[2:][max(0, t - WINDOW + 1) : t + 1] for t in range(8)])]
                )
            )
            np.testing.assert_allclose(np.stack([as_arrays(x)[0] for x in answers]), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"image_size": None}, "config.image_size"),
        ({"normalization": pb.NORMALIZATION_CROP}, "config.normalization"),
        ({"window": 244}, "config.window"),
        ({"hop": 2}, "config.hop"),
        ({"mode": pb.STREAM_MODE_LOOKAHEAD, "lookahead": 0}, "config.lookahead"),
        ({"format": pb.FORMAT_UNSPECIFIED}, "config.format"),
    ],
)
async def test_a_bad_config_is_invalid_argument(stub: Any, config: dict[str, Any], field: str) -> None:
    stream = Stream(stub, **config)
    if config.get("image_size", 1) is None:
        stream.config.ClearField("image_size")
    await stream.call.write(pb.StreamRequest(config=stream.config))
    error = await rpc_error(stream.call.read())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}: "), error.details()


async def test_a_bad_frame_ends_the_stream_naming_the_field(stub: Any) -> None:
    stream = Stream(stub)
    await stream.open()
    seq = np.asarray(walk(3), np.float32)
    assert len(await stream.send({"p": seq[0]})) == 1
    bad = seq[1].copy()
    bad[5, 0] = np.nan
    await stream.call.write(
        pb.StreamRequest(
            frame=pb.StreamFrame(
                tracks=[
                    pb.TrackFrame(track_id="p", joints=17, channels=3, keypoints=seq[1].ravel()),
                    pb.TrackFrame(track_id="q", joints=17, channels=3, keypoints=bad.ravel()),
                ]
            )
        )
    )
    error = await rpc_error(stream.call.read())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "frame.tracks[1].keypoints[5]: a value is NaN or infinite"


async def test_frames_before_a_config_are_refused(stub: Any) -> None:
    call = stub.LiftStream(timeout=60)
    await call.write(pb.StreamRequest(frame=pb.StreamFrame()))
    error = await rpc_error(call.read())
    assert (error.code(), error.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "config: the first message of a stream must be its config",
    )


def _metrics(rest_url: str) -> dict[str, float]:
    wanted = ("motionlift_streams_active", "motionlift_stream_frames_total")
    values: dict[str, float] = {}
    for line in httpx.get(f"{rest_url}/metrics").text.splitlines():
        if line.startswith(wanted):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def test_streams_and_their_frames_are_counted(stub: Any, rest_url: str) -> None:
    before = _metrics(rest_url)
    stream = Stream(stub, mode=pb.STREAM_MODE_LOOKAHEAD, lookahead=2)
    await stream.open()
    assert _metrics(rest_url)["motionlift_streams_active"] == before["motionlift_streams_active"] + 1
    seq = np.asarray(walk(6), np.float32)
    answers = [a for p in seq for a in await stream.send({"a": p, "b": p[::-1]})]
    answers += await stream.close()
    assert len(answers) == 12
    after = _metrics(rest_url)
    counted = {k: after[k] - before[k] for k in after}
    assert counted == {
        "motionlift_streams_active": 0.0,
        'motionlift_stream_frames_total{outcome="received"}': 12.0,
        'motionlift_stream_frames_total{outcome="answered"}': 12.0,
        'motionlift_stream_frames_total{outcome="skipped"}': 0.0,
    }
