"""The core over a fake model: big requests are prepared off the event loop and answer every frame."""

from __future__ import annotations

import numpy as np

from service.config import Settings
from service.core.lifter import OFFLOAD_FRAMES, Lifter
from service.core.options import LiftOptions
from service.core.tracks import Track
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
