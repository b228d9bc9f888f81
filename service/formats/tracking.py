"""Detections -> tracks: which detection in each frame is which person, and each person's sequence.

Rules, applied frame by frame in file order (deterministic: ties go to the earlier track, then to the detection
earlier in the file):

1. **Ids the file gives are used while they are consistent.** Two detections with the same id in one frame (an
   AlphaPose file held a second, tiny detection with the first one's ``idx``): the better one keeps the id --
   higher mean score, then larger box, then earlier in the file -- and the other is unassigned. An id whose
   track was detected in the frame before is doubted when its detection fails the gate against that one (the
   tracker swapped two people, or the id jumped): the detection is unassigned. After a gap an id is trusted.
2. **Unassigned detections** (no id, a duplicate's loser, a doubted id) are matched to the tracks not yet taken
   in this frame by optimal assignment (``scipy.optimize.linear_sum_assignment``) on a speed: ``cost`` (the
   mean distance of the joints both detections see, score > 0, divided by the square root of the area of the
   track's last box -- ``Detection.bounds``: the file's box, else the joints' bounding box) per frame since
   the track's last detection. Pairs faster than ``GATE`` are not matched; a detection left unmatched starts a
   new track.
3. **A track ends after ``MAX_GAP`` frames without a detection**; one more detection with its id starts a new
   track ``"<id>-2"`` (``-3``...). Without this a rare id (a sporadic false detection) once became one track of
   700 frames interpolated from 21 detections.

Track names: the file's ids (as strings, ``3.0`` -> ``"3"``); tracks of unassigned detections get the smallest
non-negative integers that are not ids of the file, in the order they start ("0", "1"... for a file without
ids). A track spans its first to its last detected frame; the frames between where it has no detection get
coordinates linearly interpolated from its neighbouring detections, score 0 (the service's mark for a missing
joint) and ``detected`` False.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from service.core.backend import Array
from service.formats.detections import Detection

# Mean joint distance / sqrt(box area) per frame above which two detections are not one person. A walking
# person's joints move about 0.05 of that per frame at 30 fps; two people standing side by side are about a box
# width apart, 0.6 for a standing person's 1:2.5 box, so a swap between neighbours in one frame fails the gate.
GATE: Final = 0.5
# Frames without a detection after which a track ends (1 s at 30 fps).
MAX_GAP: Final = 30
_FAR: Final = 1e6  # the cost of a pair beyond the gate, finite so that the assignment is always feasible


@dataclass(frozen=True)
class TrackSequence:
    """One person: ``keypoints`` ``[T, J, C]`` (float32) from the file's frame ``start`` on; ``detected``
    ``[T]`` True where the frame had a real detection, False where it was filled (all True when not given)."""

    id: str
    keypoints: Array
    start: int = 0
    detected: npt.NDArray[np.bool_] = field(default_factory=lambda: np.ones(0, np.bool_))

    def __post_init__(self) -> None:
        if len(self.detected) == 0 and len(self.keypoints):
            object.__setattr__(self, "detected", np.ones(len(self.keypoints), np.bool_))
        if len(self.detected) != len(self.keypoints):
            raise ValueError(f"detected has {len(self.detected)} frames, keypoints {len(self.keypoints)}")


@dataclass
class _Track:
    name: str
    seen: dict[int, Detection] = field(default_factory=dict)

    @property
    def last(self) -> Detection:
        return self.seen[max(self.seen)]


def cost(track: Detection, new: Detection) -> float:
    """How far ``new`` is from ``track`` (the track's last detection): the mean distance of the joints both
    see, over the square root of ``track``'s box area; infinite when they see no joint in common."""
    both = (track.scores > 0) & (new.scores > 0)
    if not both.any():
        return math.inf
    distance = float(np.linalg.norm(track.xy[both] - new.xy[both], axis=1).mean())
    return distance / math.sqrt(max(track.area(), 1.0))


def build_tracks(
    detections: Sequence[Detection], frames: int, *, gate: float = GATE, max_gap: int = MAX_GAP
) -> tuple[TrackSequence, ...]:
    """The tracks of ``detections`` (each ``frame`` in ``range(frames)``), in the order they start; see the
    module's rules."""
    by_frame: list[list[Detection]] = [[] for _ in range(frames)]
    for d in sorted(detections, key=lambda d: (d.frame, d.order)):
        by_frame[d.frame].append(d)
    names = _names({d.id for d in detections if d.id is not None})
    tracks: list[_Track] = []
    by_id: dict[str, _Track] = {}
    segments: dict[str, int] = {}
    for f, found in enumerate(by_frame):
        winners, rest = _deduplicate(found)
        used: set[int] = set()
        for d in winners:
            assert d.id is not None
            track = by_id.get(d.id)
            if track is None or _gap(track, f) > max_gap:
                segments[d.id] = segments.get(d.id, 0) + 1
                track = _Track(d.id if segments[d.id] == 1 else f"{d.id}-{segments[d.id]}")
                by_id[d.id] = track
                tracks.append(track)
            elif max(track.seen) == f - 1 and cost(track.last, d) > gate:
                rest.append(d)  # doubted: a swap or a jump
                continue
            track.seen[f] = d
            used.add(id(track))
        open_tracks = [t for t in tracks if id(t) not in used and _gap(t, f) <= max_gap]
        for d, track in _assign(rest, open_tracks, gate):
            if track is None:
                track = _Track(next(names))
                tracks.append(track)
            track.seen[f] = d
    return tuple(_span(t) for t in tracks)


def _gap(track: _Track, frame: int) -> int:
    """Frames without a detection between the track's last one and ``frame`` (0 for the next frame)."""
    return frame - max(track.seen) - 1


def _names(taken: set[str]) -> Iterator[str]:
    n = 0
    while True:
        if str(n) not in taken:
            yield str(n)
        n += 1


def _deduplicate(found: list[Detection]) -> tuple[list[Detection], list[Detection]]:
    """(one detection per id, the rest): of detections sharing an id the best keeps it."""
    best: dict[str, Detection] = {}
    for d in found:
        if d.id is not None and (d.id not in best or _rank(d) > _rank(best[d.id])):
            best[d.id] = d
    winners = [d for d in found if d.id is not None and best[d.id] is d]
    return winners, [d for d in found if d.id is None or best[d.id] is not d]


def _rank(d: Detection) -> tuple[float, float, int]:
    return d.mean_score, d.area(), -d.order


def _assign(found: list[Detection], tracks: list[_Track], gate: float) -> list[tuple[Detection, _Track | None]]:
    """Each detection with its track (``None``: a new one), by optimal assignment within the gate."""
    if not found:
        return []
    matched: dict[int, _Track] = {}
    if tracks:
        from scipy.optimize import linear_sum_assignment  # imported when needed: a second of start-up

        now = found[0].frame
        costs = np.array([[cost(t.last, d) / (now - max(t.seen)) for t in tracks] for d in found])
        rows, cols = linear_sum_assignment(np.where(costs <= gate, costs, _FAR))
        matched = {int(r): tracks[int(c)] for r, c in zip(rows, cols, strict=True) if costs[r, c] <= gate}
    return [(d, matched.get(i)) for i, d in enumerate(found)]


def _span(track: _Track) -> TrackSequence:
    """The track from its first to its last detected frame; gaps: coordinates interpolated, score 0."""
    numbers = sorted(track.seen)
    first = numbers[0]
    known = np.asarray(numbers) - first
    stacked = np.stack([np.concatenate([track.seen[n].xy, track.seen[n].scores[:, None]], axis=1) for n in numbers])
    out = np.zeros((numbers[-1] - first + 1, *stacked.shape[1:]), np.float64)
    out[known] = stacked
    detected = np.zeros(len(out), np.bool_)
    detected[known] = True
    gaps = np.flatnonzero(~detected)
    for j in range(out.shape[1]):
        for c in range(2):
            out[gaps, j, c] = np.interp(gaps, known, stacked[:, j, c])
    return TrackSequence(track.name, out.astype(np.float32), first, detected)
