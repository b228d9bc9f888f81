"""The core over a fake model: big requests are prepared off the event loop and answer every frame."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from service.config import Settings
from service.core.lifter import OFFLOAD_FRAMES, Lifter
from service.core.options import LiftOptions
from service.core.tracks import Track
from service.errors import Overloaded, PayloadTooLarge, Unavailable
from tests.fakes import FakeBackend


async def test_big_request_is_prepared_off_the_loop_and_keeps_every_frame() -> None:
    backend = FakeBackend(window=27)
    lifter = Lifter(backend, Settings(max_frames=OFFLOAD_FRAMES + 500))
    await lifter.start()
    try:
        frames = OFFLOAD_FRAMES + 100
        rng = np.random.default_rng(0)
        kp = rng.uniform(-1, 1, size=(frames, 17, 3)).astype(np.float32)
        kp[..., 2] = 1.0
        options = LiftOptions(format="h36m", normalization="none", flip=False, rootrel=False)
        small = await lifter.lift([Track("a", kp[:50])], options)
        big = await lifter.lift([Track("a", kp)], options)
    finally:
        await lifter.close()
    assert big.tracks[0].joints3d.shape == (frames, 17, 3)
    # The fake model doubles its input; merging overlapping windows of it gives back 2x the input exactly,
    # but for the root depth of each window's first frame (the official reset), wherever it is not blended.
    expected = 2 * kp
    np.testing.assert_allclose(big.tracks[0].joints3d[1:26, 1:], expected[1:26, 1:], atol=1e-6)
    np.testing.assert_allclose(big.tracks[0].joints3d[:, 5], expected[:, 5], atol=1e-5)
    np.testing.assert_allclose(small.tracks[0].joints3d[:, 5], expected[:50, 5], atol=1e-5)
    # 27-frame windows overlapping by >= 27 // 4 = 6 frames: ceil((2100 - 27) / 21) + 1 = 100 windows.
    assert big.timing.windows == 100
    assert sum(shape[0] for shape in backend.batches) == small.timing.windows + big.timing.windows


async def test_admission_and_requests_that_could_never_fit() -> None:
    backend = FakeBackend(window=27)
    lifter = Lifter(backend, Settings(max_queued_windows=8, max_batch_size=2))
    await lifter.start()
    try:
        lifter.admit()  # ready, and the queue has room
        kp = np.zeros((100, 17, 3), np.float32)
        kp[..., :2] = np.random.default_rng(1).uniform(-1, 1, size=(100, 17, 2))
        options = LiftOptions(format="h36m", normalization="none")
        # 100 frames: 5 windows of 27 (overlap 6), 10 with their flipped copies: more than the queue ever holds.
        with pytest.raises(PayloadTooLarge) as never:
            await lifter.lift([Track("a", kp)], options)
        assert never.value.field == "tracks" and never.value.message == (
            "the request needs 10 model windows and the queue holds at most 8 (--max-queued-windows); send fewer "
            "frames or tracks per request"
        )
        assert backend.batches == []  # refused before any work
        backend.gate = asyncio.Event()  # the model holds its first batch: the queue fills
        first = asyncio.create_task(lifter.lift([Track("a", kp[:27])], options))
        await backend.started.wait()
        waiting = [asyncio.create_task(lifter.lift([Track(str(i), kp[:27])], options)) for i in range(4)]
        await asyncio.sleep(0)
        assert lifter.batcher.queued == 8
        with pytest.raises(Overloaded):
            lifter.admit()  # no free window: refused before the request is read
        lifter.drain()
        with pytest.raises(Unavailable, match="the service is shutting down"):
            lifter.admit()
        assert not lifter.ready
        backend.gate.set()
        assert all(r.tracks[0].joints3d.shape == (27, 17, 3) for r in await asyncio.gather(first, *waiting))
    finally:
        await lifter.close()


async def test_batches_in_flight_follow_the_backends_concurrency_as_it_changes() -> None:
    """A remote backend's servers join and leave (Triton discovery): the batcher keeps as many batches going as the
    backend can take now, not as many as it could at start."""
    backend = FakeBackend(window=27)
    lifter = Lifter(backend, Settings())
    await lifter.start()
    try:
        assert lifter.batcher.max_running == 1
        backend.slots = 4  # three servers joined
        kp = np.zeros((10, 17, 3), np.float32)
        options = LiftOptions(format="h36m", normalization="none", flip=False, rootrel=False)
        await lifter.lift([Track("a", kp)], options)
        assert lifter.batcher.max_running == 4
        backend.slots = 0  # every server left: still one batch (it fails or waits, the backend decides)
        await lifter.lift([Track("a", kp)], options)
        assert lifter.batcher.max_running == 1
    finally:
        await lifter.close()
