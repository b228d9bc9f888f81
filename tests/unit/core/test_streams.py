"""Stream sessions over a fake model (output = 2 x input) held open with events: windows, look-ahead, hop,
the skip policy, expiry, validation. No sleeps: every wait is for an answer or an event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from service.config import Settings
from service.core.frames import FrameAnswer, TrackFrame
from service.core.lifter import Lifter
from service.core.smoothing import DEFAULT_BETA, DEFAULT_CUTOFF_HZ, one_euro, savgol
from service.core.stream_options import StreamOptions, StreamPlan
from service.core.streams import StreamSession
from service.errors import DeadlineExceeded, InvalidInput, Overloaded
from tests.fakes import FakeBackend

WINDOW = 8  # the fake model's window


def pose(t: int, track: int = 0) -> npt.NDArray[np.float32]:
    """A distinct H36M pose per (frame, track); score 0.5 so 2 x pose stays recognisable."""
    xy = np.stack([np.arange(17) * 0.01 + t, np.full(17, track * 10.0)], axis=-1)
    out: npt.NDArray[np.float32] = np.concatenate([xy, np.full((17, 1), 0.5)], axis=-1).astype(np.float32)
    return out


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def lifter() -> AsyncIterator[Lifter]:
    backend = FakeBackend(window=WINDOW)
    lifter = Lifter(backend, Settings(max_queue_delay_ms=0))
    await lifter.start()
    yield lifter
    await lifter.close()


def resolve(**config: Any) -> StreamPlan:
    return StreamOptions.from_mapping(config).resolve(model_window=WINDOW)


def plan(**config: Any) -> StreamPlan:
    return resolve(**{"format": "h36m", "normalization": "none", **config})


def session(lifter: Lifter, clock: Clock | None = None, **config: Any) -> StreamSession:
    kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return StreamSession(lifter.infer_windows, plan(**config), metrics=lifter.metrics, max_tracks=3, **kwargs)


def frame(t: int, track: str = "a", i: int = 0, **kw: Any) -> TrackFrame:
    """Frame t of track ``track`` (a, b, c...), sent as the i-th track of its message."""
    return TrackFrame(track, pose(t, ord(track) - ord("a")), field=f"frame.tracks[{i}]", **kw)


async def take(s: StreamSession, n: int) -> list[FrameAnswer]:
    out: list[FrameAnswer] = []
    if n:
        async for answer in s.answers():
            out.append(answer)
            if len(out) == n:
                break
    return out


async def rest(s: StreamSession) -> list[FrameAnswer]:
    await s.finish()
    return [a async for a in s.answers()]


def counts(lifter: Lifter) -> dict[str, int]:
    """Stream frames by outcome, and the streams open, as /metrics reports them."""
    sample = lifter.metrics.registry.get_sample_value
    frames = {o: sample("motionlift_stream_frames_total", {"outcome": o}) for o in ("received", "answered", "skipped")}
    return {k: int(v or 0) for k, v in {**frames, "streams": sample("motionlift_streams_active")}.items()}


def expect(answer: FrameAnswer, t: int, first: int, track: int = 0) -> None:
    """The answer is frame t, from a window whose first frame is ``first`` (root depth 0 at that row)."""
    want = 2 * pose(t, track)
    if t == first:
        want[0, 2] = 0.0
    np.testing.assert_array_equal(answer.joints3d, want)


def test_resolve_defaults_and_errors() -> None:
    p = plan()
    assert (p.window, p.hop, p.mode, p.lookahead, p.expiry_s) == (WINDOW, 1, "causal", 0, 10.0)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"normalization": None}, "config.image_size"),  # would be crop
        ({"normalization": "crop", "image_size": (640, 480)}, "config.normalization"),
        ({"format": "body25"}, "config.format"),
        ({"pixels": True}, "config.pixels"),
        ({"window": WINDOW + 1}, "config.window"),
        ({"hop": 2}, "config.hop"),
        ({"lookahead": 1}, "config.lookahead"),
        ({"mode": "lookahead"}, "config.lookahead"),
        ({"mode": "lookahead", "lookahead": WINDOW}, "config.lookahead"),
        ({"mode": "lookahead", "lookahead": 3, "hop": WINDOW - 2}, "config.hop"),
        ({"track_expiry_s": -1.0}, "config.track_expiry_s"),
        ({"overlap": 2}, "config.overlap"),
        ({"mode": "ahead"}, "config.mode"),
        ({"window": "8"}, "config.window"),
    ]
    for change, field in bad:
        config = {"format": "h36m", "normalization": "none", **change}
        with pytest.raises(InvalidInput) as info:
            resolve(**config)
        assert info.value.field == field, change
    pixel = resolve(format="coco", image_size=(640, 480))
    assert pixel.options.resolved_normalization() == "pixel" and pixel.options.resolved_pixels()


async def test_causal_answers_each_frame_from_the_window_ending_at_it(lifter: Lifter) -> None:
    s = session(lifter)
    for t in range(12):
        s.push([frame(t)])
        (answer,) = await take(s, 1)
        assert (answer.frame_index, answer.lookahead, answer.window_frames) == (t, 0, min(t + 1, WINDOW))
        expect(answer, t, first=max(0, t - WINDOW + 1))
        assert (answer.skipped, answer.skipped_total, answer.latency.batch_size) == (0, 0, 2)  # + its flipped copy
    assert await rest(s) == []
    backend = lifter.backend
    assert isinstance(backend, FakeBackend)  # only each window's last row is asked of the model
    assert backend.firsts == [min(t + 1, WINDOW) - 1 for t in range(12)]


async def test_lookahead_waits_for_k_frames_and_flushes_at_the_end(lifter: Lifter) -> None:
    s = session(lifter, mode="lookahead", lookahead=2)
    answers = []
    for t in range(10):
        s.push([frame(t, frame_index=100 + t, timestamp_s=t / 30)])
        answers += await take(s, 1 if t >= 2 else 0)
    assert [a.frame_index for a in answers] == list(range(100, 108))
    for t, a in enumerate(answers):
        assert (a.lookahead, a.timestamp_s) == (2, t / 30)
        expect(a, t, first=max(0, t + 2 - WINDOW + 1))
    tail = await rest(s)  # frames 8 and 9, from the window ending at frame 9
    assert [(a.frame_index, a.lookahead) for a in tail] == [(108, 1), (109, 0)]
    backend = lifter.backend
    assert isinstance(backend, FakeBackend)  # rows from the answered frame on: k + 1 of them, then the last two
    assert backend.firsts == [min(t + 1, WINDOW) - 3 for t in range(2, 10)] + [WINDOW - 2]


async def test_hop_shares_one_window_between_hop_frames(lifter: Lifter) -> None:
    s = session(lifter, mode="lookahead", lookahead=1, hop=3)
    got = []
    for t in range(8):
        s.push([frame(t)])
        due = t >= 1 and (t - 1 + 1) % 3 == 0  # 3 frames have their 1 later frame at t = 3, 6
        got += [(a.frame_index, a.lookahead, a.window_frames) for a in await take(s, 3 if due else 0)]
    assert got == [(0, 3, 4), (1, 2, 4), (2, 1, 4), (3, 3, 7), (4, 2, 7), (5, 1, 7)]
    assert [(a.frame_index, a.lookahead) for a in await rest(s)] == [(6, 1), (7, 0)]
    backend = lifter.backend
    assert isinstance(backend, FakeBackend)  # hop + lookahead rows; the first window's are all it has
    assert backend.firsts == [0, 3, 6]


async def test_latest_frame_wins_while_the_model_is_busy(lifter: Lifter) -> None:
    backend = lifter.backend
    assert isinstance(backend, FakeBackend)
    backend.gate = gate = asyncio.Event()
    s = session(lifter)
    s.push([frame(0)])
    await backend.started.wait()  # frame 0's window is in the model
    for t in (1, 2, 3, 4):
        s.push([frame(t)])  # 1 is submitted too (IN_FLIGHT 2); 2, 3 and 4 each replace the waiting one
    gate.set()
    answers = await take(s, 3)
    assert [(a.frame_index, a.skipped, a.skipped_total) for a in answers] == [(0, 0, 0), (1, 0, 0), (4, 2, 2)]
    assert answers[2].window_frames == 5
    s.push([frame(5)])
    (last,) = await take(s, 1)
    assert (last.frame_index, last.skipped, last.skipped_total) == (5, 0, 2)
    assert counts(lifter) == {"received": 6, "answered": 4, "skipped": 2, "streams": 1}
    await s.close()
    assert counts(lifter)["streams"] == 0


async def test_a_burst_is_answered_by_its_newest_frame_only(lifter: Lifter) -> None:
    s = session(lifter)
    s.push([frame(0)])
    for t in range(1, 5):
        s.push([frame(t)])  # no await between: 0 and 1 are submitted (IN_FLIGHT), 2 and 3 replaced while waiting
    answers = await take(s, 3)
    assert [(a.frame_index, a.skipped, a.window_frames) for a in answers] == [(0, 0, 1), (1, 0, 2), (4, 2, 5)]


async def test_a_refused_window_is_skipped_and_reported(lifter: Lifter, monkeypatch: pytest.MonkeyPatch) -> None:
    real = lifter.infer_windows
    refused = asyncio.Event()

    async def full_once(*args: Any, **kwargs: Any) -> Any:
        if not refused.is_set():
            refused.set()  # the worker records the skip before this test runs again
            raise Overloaded("the queue is full")
        return await real(*args, **kwargs)

    monkeypatch.setattr(lifter, "infer_windows", full_once)
    s = session(lifter)
    s.push([frame(0)])
    await refused.wait()
    s.push([frame(1)])
    (answer,) = await take(s, 1)
    assert (answer.frame_index, answer.skipped, answer.skipped_total, answer.window_frames) == (1, 1, 1, 2)
    assert counts(lifter) == {"received": 2, "answered": 1, "skipped": 1, "streams": 1}


async def test_tracks_keep_their_own_windows(lifter: Lifter) -> None:
    s = session(lifter)
    sent: dict[str, list[int]] = {"a": [], "b": []}  # the pose sent as each frame of each track
    for t in range(12):
        message = [frame(t, "a")] + ([frame(50 + t, "b", i=1)] if t % 3 else [])
        for f in message:
            sent[f.track_id].append(t if f.track_id == "a" else 50 + t)
        s.push(message)
        answers = await take(s, len(message))
        assert sorted(a.track_id for a in answers) == sorted(f.track_id for f in message)
        for a in answers:
            n = len(sent[a.track_id])  # every frame so far was answered: this is the newest one
            assert (a.frame_index, a.window_frames) == (n - 1, min(n, WINDOW))
            shown = sent[a.track_id][-1]
            expect(a, shown, first=shown if n == 1 else -1, track=ord(a.track_id) - ord("a"))
    assert sorted(s.tracks) == ["a", "b"]


async def test_silent_tracks_expire(lifter: Lifter) -> None:
    clock = Clock()
    s = session(lifter, clock=clock, track_expiry_s=5.0)
    s.push([frame(0, "a"), frame(0, "b")])
    await take(s, 2)
    clock.now += 3
    s.push([frame(1, "b")])
    await take(s, 1)
    clock.now += 3  # a silent for 6 s, b for 3 s
    s.push([frame(2, "b")])
    assert s.tracks == ["b"]
    (answer,) = await take(s, 1)
    assert answer.window_frames == 3
    s.push([frame(1, "a")])  # a starts over from an empty window
    (answer,) = await take(s, 1)
    assert (answer.track_id, answer.frame_index, answer.window_frames) == ("a", 0, 1)
    await s.close()


async def test_an_idle_stream_expires_its_tracks_and_answers_their_last_frames(lifter: Lifter) -> None:
    s = session(lifter, mode="lookahead", lookahead=2, track_expiry_s=0.01)
    s.push([frame(0)])  # waits for 2 later frames that never come
    (answer,) = await take(s, 1)  # the expiry timer answers it from the window ending at it
    assert (answer.frame_index, answer.lookahead) == (0, 0)
    assert s.tracks == []
    await s.close()


@pytest.mark.parametrize(
    ("frames", "field"),
    [
        ([TrackFrame("a", np.full((17, 3), np.nan), field="frame.tracks[0]")], "frame.tracks[0].keypoints[0]"),
        ([TrackFrame("a", np.zeros((26, 3), np.float32), field="frame.tracks[0]")], "frame.tracks[0].keypoints"),
        ([TrackFrame("a", np.full((17, 3), -2.0), field="frame.tracks[0]")], "frame.tracks[0].keypoints[0][2]"),
        ([frame(0, "a"), frame(1, "a", i=1)], "frame.tracks[1]"),
        ([frame(0, t, i=i) for i, t in enumerate("abcd")], "frame.tracks[3]"),
        ([frame(0, "a", frame_index=5)], "frame.tracks[0].frame_index"),
        ([frame(0, "b", timestamp_s=float("inf"))], "frame.tracks[0].timestamp_s"),
    ],
)
async def test_bad_frames_name_the_field_and_change_nothing(
    lifter: Lifter, frames: list[TrackFrame], field: str
) -> None:
    s = session(lifter)
    s.push([frame(0, "a", frame_index=5)])
    await take(s, 1)
    with pytest.raises(InvalidInput) as info:
        s.push(frames)
    assert info.value.field == field
    assert s.tracks == ["a"]
    await s.close()


async def test_a_core_failure_ends_the_stream(lifter: Lifter) -> None:
    s = StreamSession(lifter.infer_windows, plan(), metrics=lifter.metrics, max_tracks=1, timeout_s=lambda: 0.0)
    s.push([frame(0)])
    with pytest.raises(DeadlineExceeded):
        await take(s, 1)
    await s.close()


async def test_a_failed_window_ends_the_stream_after_the_answer_of_the_one_before(
    lifter: Lifter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two windows in flight: the second fails first, but frame 0's answer still goes out before the error."""
    backend = lifter.backend
    assert isinstance(backend, FakeBackend)
    backend.gate = gate = asyncio.Event()
    real, calls = lifter.infer_windows, 0

    async def second_fails(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise DeadlineExceeded("no answer within 0 s; the request was dropped")
        return await real(*args, **kwargs)

    monkeypatch.setattr(lifter, "infer_windows", second_fails)
    s = session(lifter)
    s.push([frame(0)])
    await backend.started.wait()  # frame 0's window is in the model
    s.push([frame(1)])  # submitted at once, and fails at once
    await asyncio.sleep(0)
    gate.set()
    answers: list[FrameAnswer] = []
    with pytest.raises(DeadlineExceeded, match="no answer within 0 s"):
        async for answer in s.answers():
            answers.append(answer)
    assert [a.frame_index for a in answers] == [0]
    await s.close()


async def test_policy_all_slows_the_sender_instead_of_skipping(lifter: Lifter) -> None:
    backend = lifter.backend
    assert isinstance(backend, FakeBackend)
    backend.gate = gate = asyncio.Event()
    s = session(lifter, policy="all")
    assert s.plan.policy == "all"
    s.push([frame(0)])
    await backend.started.wait()  # frame 0's window is in the model
    s.push([frame(1)])  # submitted behind it (IN_FLIGHT 2)
    s.push([frame(2)])
    room = asyncio.create_task(s.room())
    await asyncio.sleep(0)
    assert room.done()  # one window waits: room for another
    s.push([frame(3)])  # two windows wait: no room for a third
    room = asyncio.create_task(s.room())
    await asyncio.sleep(0)
    assert not room.done()
    gate.set()
    await room  # the model took the next window
    answers = await rest(s)
    assert [(a.frame_index, a.skipped) for a in answers] == [(0, 0), (1, 0), (2, 0), (3, 0)]


async def test_policy_all_answers_every_frame_of_an_unpaced_stream(lifter: Lifter) -> None:
    s = session(lifter, policy="all")

    async def send() -> None:
        for t in range(1000):
            await s.room()
            s.push([frame(t)])
        await s.finish()

    sender = asyncio.create_task(send())
    answers = [a async for a in s.answers()]
    await sender
    assert [a.frame_index for a in answers] == list(range(1000))
    assert sum(a.skipped for a in answers) == 0 and answers[-1].skipped_total == 0
    assert counts(lifter) == {"received": 1000, "answered": 1000, "skipped": 0, "streams": 1}


async def test_policy_all_offers_a_refused_window_again(lifter: Lifter, monkeypatch: pytest.MonkeyPatch) -> None:
    real = lifter.infer_windows
    refusals = 0

    async def full_twice(*args: Any, **kwargs: Any) -> Any:
        nonlocal refusals
        if refusals < 2:
            refusals += 1
            raise Overloaded("the queue is full")
        return await real(*args, **kwargs)

    monkeypatch.setattr(lifter, "infer_windows", full_twice)
    s = session(lifter, policy="all")
    s.push([frame(0)])
    answers = await rest(s)
    assert [(a.frame_index, a.skipped) for a in answers] == [(0, 0)] and refusals == 2


def test_an_unknown_policy_names_the_field() -> None:
    with pytest.raises(InvalidInput) as info:
        plan(policy="newest")
    assert (info.value.field, info.value.message[:30]) == ("config.policy", "unknown stream policy 'newest'")


async def unsmoothed(lifter: Lifter, frames: int) -> np.ndarray:  # type: ignore[type-arg]
    """The joints a causal stream without smoothing answers for frames 0..frames-1."""
    s = session(lifter, policy="all")
    for t in range(frames):
        s.push([frame(t)])
    return np.stack([a.joints3d for a in await rest(s)])


async def test_a_savgol_stream_answers_half_a_window_later_what_the_filter_gives(lifter: Lifter) -> None:
    raw = await unsmoothed(lifter, 12)
    s = session(lifter, policy="all", smoothing="savgol", smoothing_window=5)
    assert s.plan.smoothing_latency_frames == 2
    for t in range(6):
        s.push([frame(t)])
    early = await take(s, 4)  # frame 5's answer releases frame 3: each frame waits for 2 later answers
    assert [a.frame_index for a in early] == [0, 1, 2, 3]
    with pytest.raises(TimeoutError):  # frame 4 waits for frame 6
        await asyncio.wait_for(take(s, 1), 0.2)
    s.push([frame(6)])
    assert [a.frame_index for a in await take(s, 1)] == [4]
    for t in range(7, 12):
        s.push([frame(t)])
    answers = early + [a for a in await rest(s) if a.frame_index > 4]
    assert [a.frame_index for a in answers] == [0, 1, 2, 3, *range(5, 12)]
    want = savgol(raw, 5)
    np.testing.assert_allclose(np.stack([a.joints3d for a in answers]), want[[0, 1, 2, 3, *range(5, 12)]], atol=1e-5)
    assert all(a.latency.smoothing_ms >= 0 for a in answers)


async def test_a_one_euro_stream_answers_every_frame_at_once(lifter: Lifter) -> None:
    raw = await unsmoothed(lifter, 10)
    s = session(lifter, smoothing="one-euro", fps=10.0)
    assert s.plan.smoothing_latency_frames == 0
    answers = []
    for t in range(10):
        s.push([frame(t)])
        answers += await take(s, 1)  # frame t's own answer, before frame t + 1 is sent
    assert [a.frame_index for a in answers] == list(range(10))
    want = one_euro(raw, fps=10.0, cutoff=DEFAULT_CUTOFF_HZ, beta=DEFAULT_BETA)
    np.testing.assert_allclose(np.stack([a.joints3d for a in answers]), want, atol=1e-5)
    await s.close()


@pytest.mark.parametrize("setting", [{"subject_height_m": 1.8}, {"root": "trajectory"}, {"min_track_frames": 2}])
def test_a_stream_refuses_whole_sequence_settings_naming_the_field(setting: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as caught:
        plan(**setting)
    assert caught.value.field == "config." + next(iter(setting))
    assert (
        "metric scale (subject_height_m) and the root trajectory (root, focal_length_px; a stream takes rootrel) "
        "are for whole sequences" in caught.value.message
    )
