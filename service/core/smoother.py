"""Smoothing of a live track's answers, frame by frame (a stream's ``smoothing``; ``service.core.smoothing`` has the
filters and their whole-sequence form).

A ``Smoother`` takes a track's answered frames in order (``feed``) and gives back the ones it can now release,
smoothed; ``flush`` releases the rest when the track ends. What it holds back is the latency it adds:

- ``one-euro``: causal, nothing held back (``latency_frames`` 0). Time between two answered frames is their
  distance in the track's own frame count over ``fps``, so a skipped frame widens the step as it should.
- ``savgol``: frame t is released once frame t + window // 2 has been answered (``latency_frames`` =
  window // 2), smoothed over the window centred on it. The first window // 2 frames wait for the first full
  window (they are fitted on it, as the whole-sequence filter fits its ends), and the last ones are fitted on
  the last full window at ``flush``. So a track answered without gaps comes out exactly as ``smoothing.savgol``
  of its unsmoothed answers, and as ``smoothing.one_euro`` for one-euro (tested).
- A gap (frames never answered, under policy ``latest``) ends a savgol segment: the frames before it are fitted
  on what they have, and a new segment starts, rather than fitting one curve across a jump.

Rows are ``[17, 3]`` joints as the stream answers them; the payload is whatever the caller needs back with each.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from service.core import smoothing
from service.core.backend import Array
from service.core.options import LiftOptions

P = TypeVar("P")


@dataclass(frozen=True)
class Held(Generic[P]):
    """A frame given back by the smoother: its smoothed joints and the caller's payload."""

    joints: Array
    payload: P


class Smoother(Generic[P]):
    """The smoothing state of one track; see the module docstring. ``none`` passes frames through."""

    def __init__(self, options: LiftOptions) -> None:
        self._kind = options.smoothing or "none"
        self._window = options.smoothing_window or smoothing.DEFAULT_WINDOW
        self._period = 1.0 / (options.fps or smoothing.DEFAULT_FPS)
        cutoff, beta = smoothing.one_euro_settings(options)
        self._filter = smoothing.OneEuro(cutoff=cutoff, beta=beta)
        # savgol: the segment's last `window` rows, how many it has had, how many were released
        self._rows: deque[tuple[Array, P]] = deque(maxlen=self._window)
        self._count = 0
        self._released = 0
        self._last: int | None = None  # the previous frame's number in the track's count

    def feed(self, number: int, joints: Array, payload: P) -> list[Held[P]]:
        """The track's answer for its frame ``number`` (increasing); the frames that can be released now."""
        last, self._last = self._last, number
        if self._kind == "one-euro":
            step = self._period * (1 if last is None else number - last)
            return [Held(self._filter.step(joints.astype(np.float64), step).astype(np.float32), payload)]
        if self._kind != "savgol":
            return [Held(joints, payload)]
        out = self.flush() if last is not None and number != last + 1 else []  # a gap ends the segment
        self._last = number
        self._rows.append((joints, payload))
        self._count += 1
        half = self._window // 2
        if self._count < self._window:
            return out
        # The first full window releases its first half + 1 frames, fitted on it; later ones their centre frame.
        fitted = smoothing.savgol(np.stack([r[0] for r in self._rows]), self._window)
        first = 0 if self._released == 0 else half
        self._released = self._count - half
        return [*out, *(Held(fitted[i], self._rows[i][1]) for i in range(first, half + 1))]

    @property
    def holding(self) -> bool:
        """Whether frames fed are still held back."""
        return self._count > self._released

    def flush(self) -> list[Held[P]]:
        """Release every frame still held (the track ended, or a gap ends the segment) and start afresh."""
        rows, count, released = list(self._rows), self._count, self._released
        self._rows.clear()
        self._count = self._released = 0
        self._last = None
        if count == released:
            return []
        # The rows held are the segment's last len(rows) frames; those not yet released are its last ones.
        fitted = smoothing.savgol(np.stack([r[0] for r in rows]), self._window)
        first = len(rows) - (count - released)
        return [Held(fitted[i], rows[i][1]) for i in range(first, len(rows))]
