"""A request's tracks as model windows, and the windows' outputs back as the tracks' answers.

``prepare`` validates every track (``service.core.arrays``), keeps those the track policy selects
(``service.core.selection``), normalises them (``service.core.keypoints``) and cuts them into windows
(``service.core.windows``), all tracks' windows in one list so they batch together; ``answers`` hands each track
its own outputs (``service.core.answer``). Both are pure and run on the event loop or, for big requests, in a worker
thread (the lifter chooses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from service.core import answer, keypoints, selection, windows
from service.core.arrays import check_sequence
from service.core.backend import Array
from service.core.options import LiftOptions
from service.core.results import TrackResult
from service.core.tracks import Track


@dataclass(frozen=True)
class Prepared:
    """One selected track: its windows' ``spans`` and where they start in the request's window list."""

    track: Track
    spans: list[tuple[int, int]]
    first: int  # index of this track's first window in the request's window list
    inputs: Array  # the normalised keypoints [T, 17, 3] (a root trajectory measures the 2D pose's size)


def prepare(
    tracks: Sequence[Track], options: LiftOptions, *, window: int, overlap: int, max_frames: int
) -> tuple[list[Prepared], list[Array]]:
    """The selected tracks and all their windows ``[T_i, 17, 3]`` in one list. Raises ``InvalidInput`` naming
    the track's field for keypoints that are malformed, non-finite, out of range or over ``max_frames``, and
    for a track policy that keeps nothing."""
    checked = [
        replace(t, keypoints=check_sequence(t.keypoints, format=options.format, field=t.field, max_frames=max_frames))
        for t in tracks
    ]
    prepared: list[Prepared] = []
    inputs: list[Array] = []
    for track in selection.select(checked, options):
        x = keypoints.normalise(track.keypoints, options, field=track.field)
        spans = windows.plan(len(x), window, overlap)
        prepared.append(Prepared(track, spans, len(inputs), x))
        inputs.extend(x[s:e] for s, e in spans)
    return prepared, inputs


def answers(prepared: list[Prepared], outputs: list[Array], options: LiftOptions) -> list[TrackResult]:
    """Each track's answer from its own windows' ``outputs`` (in the order ``prepare`` listed the windows).
    Raises ``BackendError`` for outputs that are not finite (``service.core.answer``)."""
    return [
        answer.track(p.track, outputs[p.first : p.first + len(p.spans)], p.spans, p.inputs, options) for p in prepared
    ]
