"""Temporal smoothing of a track's answered joints (``smoothing`` and its parameters in ``LiftOptions``).

- ``savgol``: a Savitzky-Golay filter (scipy's ``savgol_filter``: a least-squares quadratic over ``smoothing_window``
  frames centred on each frame, ends fitted on the nearest full window). It keeps motion that is quadratic over the
  window exactly (no lag, no lost amplitude there) and removes frame-to-frame jitter. It looks
  ``smoothing_window // 2`` frames ahead, so it is for whole sequences, not live streams.
- ``one-euro``: the 1€ filter of Casiez, Roussel and Vogel (CHI 2012): an exponential low-pass whose cutoff rises
  with speed, ``cutoff = smoothing_cutoff + smoothing_beta * |speed|`` (Hz; speed in the answer's units per
  second), so slow motion is smoothed hard and fast motion follows with little lag. Causal: each frame uses only
  the ones before it. Time runs at ``fps`` frames per second (default 30).

Applied to each track's joints ``[T, 17, 3]`` after the windows are merged and before pixels are derived, so
``joints3d`` and ``joints3d_px`` agree. ``none`` (the default) leaves the answer as the model gave it.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from scipy.signal import savgol_filter

from service.core.backend import Array
from service.core.options import DEFAULT_SMOOTHING_WINDOW, LiftOptions

SAVGOL_ORDER: Final = 2
DEFAULT_WINDOW: Final = DEFAULT_SMOOTHING_WINDOW
DEFAULT_CUTOFF_HZ: Final = 1.0
DEFAULT_BETA: Final = 5.0
DEFAULT_FPS: Final = 30.0
DERIVATIVE_CUTOFF_HZ: Final = 1.0  # the 1€ paper's d_cutoff


def smooth(joints: Array, options: LiftOptions) -> Array:
    """``joints`` ``[T, J, 3]`` smoothed as ``options`` say (a new array; the input when ``none``)."""
    kind = options.smoothing or "none"
    if kind == "none" or len(joints) < 2:
        return joints
    if kind == "savgol":
        return savgol(joints, options.smoothing_window or DEFAULT_WINDOW)
    cutoff, beta = one_euro_settings(options)
    return one_euro(joints, fps=options.fps or DEFAULT_FPS, cutoff=cutoff, beta=beta)


def one_euro_settings(options: LiftOptions) -> tuple[float, float]:
    """``(cutoff, beta)`` of the 1€ filter, the defaults filled in."""
    cutoff = options.smoothing_cutoff if options.smoothing_cutoff is not None else DEFAULT_CUTOFF_HZ
    return cutoff, options.smoothing_beta if options.smoothing_beta is not None else DEFAULT_BETA


def savgol(joints: Array, window: int) -> Array:
    """Savitzky-Golay over ``window`` frames (shortened to the sequence, odd, at least the order + 2)."""
    length = min(window, len(joints) if len(joints) % 2 else len(joints) - 1)
    if length <= SAVGOL_ORDER + 1:
        return joints
    out: Array = savgol_filter(joints, length, SAVGOL_ORDER, axis=0, mode="interp").astype(np.float32)
    return out


def alpha(cutoff: Array | float, period: float) -> Array:
    """The smoothing factor of an exponential low-pass at ``cutoff`` Hz for a step of ``period`` seconds (1€ paper)."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, np.float64))
    out: Array = 1.0 / (1.0 + tau / period)
    return out


class OneEuro:
    """The 1€ filter's state over a sequence of arrays (float64), one step per frame; the first passes through."""

    def __init__(self, *, cutoff: float, beta: float) -> None:
        self._cutoff, self._beta = cutoff, beta
        self._out: Array | None = None
        self._speed: Array | None = None

    def step(self, x: Array, period: float) -> Array:
        """The filtered value of ``x``, ``period`` seconds after the previous step."""
        if self._out is None or self._speed is None:
            self._out, self._speed = x, np.zeros_like(x)
            return x
        alpha_d = alpha(DERIVATIVE_CUTOFF_HZ, period)
        self._speed = alpha_d * (x - self._out) / period + (1.0 - alpha_d) * self._speed
        a = alpha(self._cutoff + self._beta * np.abs(self._speed), period)
        self._out = a * x + (1.0 - a) * self._out
        return self._out


def one_euro(joints: Array, *, fps: float, cutoff: float, beta: float) -> Array:
    """The 1€ filter along the frames, every coordinate at once."""
    period = 1.0 / fps
    state = OneEuro(cutoff=cutoff, beta=beta)
    x = joints.astype(np.float64)
    out: Array = np.stack([state.step(row, period) for row in x]).astype(np.float32)
    return out
