"""Cutting a sequence into model windows and merging the windows' outputs without seams.

Why: the official ``infer_wild.py`` cuts a sequence into non-overlapping 243-frame clips and sets each
clip's root depth to 0 at its first frame, so the output jumps at every clip boundary (MotionBERT issues
#31, #58). Here consecutive windows overlap and are merged by a linear cross-fade: each window's weight
ramps up from ~0 over its overlap with the previous window and down to ~0 over its overlap with the next,
so no frame switches abruptly from one window's answer to another's. ``overlap=0`` reproduces the
official clipping exactly (last clip shorter), which the tests use to prove equality with ``infer_wild.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from service.core.backend import Array
from service.errors import PayloadTooLarge

ROOT = 0  # pelvis, the root joint of H36M-17


def plan(frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Window ``(start, end)`` spans covering ``range(frames)``.

    ``frames <= window`` gives one window of ``frames`` frames. ``overlap == 0`` gives the official
    non-overlapping clips, the last one shorter. Otherwise every window is exactly ``window`` frames long
    (so they all batch together), consecutive windows overlap by at least ``overlap`` frames, and the
    starts are spread evenly from 0 to ``frames - window``. Raises ValueError if ``overlap >= window``.
    """
    if frames < 1 or window < 1:
        raise ValueError("frames and window must be positive")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, {window - 1}], got {overlap}")
    if frames <= window:
        return [(0, frames)]
    if overlap == 0:
        return [(s, min(s + window, frames)) for s in range(0, frames, window)]
    hop = window - overlap
    count = math.ceil((frames - window) / hop) + 1
    last = frames - window
    starts = [round(i * last / (count - 1)) for i in range(count)]
    return [(s, s + window) for s in starts]


def count(frames: int, window: int, overlap: int) -> int:
    """``len(plan(frames, window, overlap))`` without building the spans (for admission: O(1))."""
    if frames <= window:
        return 1
    if overlap == 0:
        return math.ceil(frames / window)
    return math.ceil((frames - window) / (window - overlap)) + 1


def needed(frames: Iterable[int], window: int, overlap: int, *, flip: bool) -> int:
    """Model windows a request of tracks with these frame counts needs (twice with flip)."""
    return sum(count(f, window, overlap) for f in frames if f > 0) * (2 if flip else 1)


@dataclass(frozen=True)
class Capacity:
    """What the queue can ever hold, for checking a request before its arrays exist (a body reader process
    checks with it, so a body that could never be queued is refused there instead of sending its arrays back).
    ``overlap``: the service's default, for requests that do not set one."""

    window: int
    overlap: int
    max_windows: int

    def check(self, frames: Iterable[int], *, overlap: int | None, flip: bool) -> None:
        """``PayloadTooLarge`` when these tracks need more windows than the queue holds; an ``overlap`` the core
        would refuse is left to it (nothing is said here)."""
        if overlap is not None and not 0 <= overlap < self.window:
            return
        windows = needed(frames, self.window, self.overlap if overlap is None else overlap, flip=flip)
        if windows > self.max_windows:
            raise too_many(windows, self.max_windows)


def too_many(windows: int, max_windows: int) -> PayloadTooLarge:
    """The 413 of a request that needs ``windows`` from a queue of ``max_windows``: no retry can help."""
    return PayloadTooLarge(
        f"the request needs {windows} model windows and the queue holds at most {max_windows} "
        "(--max-queued-windows); send fewer frames or tracks per request",
        field="tracks",
    )


def _ramp(start: int, end: int, spans: list[tuple[int, int]], index: int) -> Array:
    """Cross-fade weights of window ``index``: linear over its overlaps with its neighbours, else 1."""
    length = end - start
    weight = np.ones(length, np.float32)
    position = np.arange(length, dtype=np.float32)
    if index > 0:
        rise = spans[index - 1][1] - start  # frames shared with the previous window
        if rise > 0:
            weight = np.minimum(weight, (position + 0.5) / rise)
    if index + 1 < len(spans):
        fall = end - spans[index + 1][0]  # frames shared with the next window
        if fall > 0:
            weight = np.minimum(weight, (length - position - 0.5) / fall)
    return weight


def merge(outputs: list[Array], spans: list[tuple[int, int]], frames: int, *, rootrel: bool) -> Array:
    """Merge per-window outputs ``[len, 17, 3]`` into one ``[frames, 17, 3]`` sequence by cross-fading.

    ``rootrel``: subtract the root joint from every joint (root-centred poses). Otherwise the official
    in-the-wild convention: the model's depth is already relative to the root of each frame (as in its
    training data), and the root's depth at each window's first frame is set to exactly 0, as
    ``infer_wild.py`` does per clip (with overlapping windows that frame has almost no weight).
    """
    total = np.zeros((frames, 17, 3), np.float64)
    weights = np.zeros(frames, np.float64)
    for index, ((start, end), out) in enumerate(zip(spans, outputs, strict=True)):
        out = out.astype(np.float64)
        if rootrel:
            out = out - out[:, ROOT : ROOT + 1, :]
        else:
            out[0, ROOT, 2] = 0.0
        weight = _ramp(start, end, spans, index).astype(np.float64)
        total[start:end] += out * weight[:, None, None]
        weights[start:end] += weight
    merged: Array = (total / weights[:, None, None]).astype(np.float32)
    return merged
