"""Metric scale: an answer in metres when the caller knows the subject's height (``subject_height_m``).

One camera cannot measure a person: the model's units are the image's (``coordinates``). Given the standing height,
each track is scaled by one factor for the whole sequence so that its median ankle-to-head chain (the mean of both
legs' thigh and shin, then pelvis-spine-thorax-neck-head: the H36M joints a standing person stacks) is
``CHAIN_FRACTION`` of it. The fraction comes from anthropometry, not from us: the ankle joint stands at 0.039 of
stature (Drillis and Contini's segment proportions, as tabled in D. A. Winter, *Biomechanics and Motor Control of
Human Movement*, 4th ed., fig. 4.1), and H36M's head joint sits about 0.02 of stature below the top of the head
(Human3.6M's head marker on the forehead), so the chain is 1 - 0.039 - 0.02 = 0.941 of the height.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from service.core.backend import Array

CHAIN_FRACTION: Final = 0.941
# (parent, child) bones of the chain, H36M-17 indices: thigh and shin of each leg, then the spine up to the head.
LEGS: Final = (((1, 2), (2, 3)), ((4, 5), (5, 6)))
TRUNK: Final = ((0, 7), (7, 8), (8, 9), (9, 10))


def chain(joints: Array) -> float:
    """The median ankle-to-head chain of a track ``[T, 17, 3]``, in its units (0 for a skeleton at one point)."""

    def length(a: int, b: int) -> float:
        return float(np.median(np.linalg.norm(joints[:, b] - joints[:, a], axis=-1)))

    legs = np.mean([sum(length(a, b) for a, b in leg) for leg in LEGS])
    return float(legs + sum(length(a, b) for a, b in TRUNK))


def metric(joints: Array, height_m: float) -> Array:
    """``joints`` scaled to metres for a subject ``height_m`` tall (see the module); unchanged when the skeleton has
    no length (nothing to scale by)."""
    units = chain(joints)
    if not units > 0:
        return joints
    out: Array = (joints * np.float32(CHAIN_FRACTION * height_m / units)).astype(np.float32)
    return out
