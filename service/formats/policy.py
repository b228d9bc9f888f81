"""A detector file's people as the core's tracks, with the track policy's defaults for files.

What ``min_track_frames``, ``max_gap_frames`` and ``person`` do is the core's rule (``service.core.selection``),
the same for every request. A request's tracks are the caller's own, so there they are unset by default; a
detector file's tracks are the readers' guesses (a passer-by seen for three frames, a false detection), so the
file paths (``POST /lift/file``, ``motionlift lift``) default to ``MIN_TRACK_FRAMES`` detected frames and the
tracker's ``MAX_GAP`` (one second at 30 fps each). ``max_gap_frames`` is also the tracker's own gap: a track
the reader ended at a longer gap is not joined again. One unnamed sequence (a ``POST /lift`` body with
``keypoints``) is lifted as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from service.core.options import MAX_SELECTION_FRAMES
from service.core.tracks import Track
from service.errors import InvalidInput
from service.formats.files import KeypointFile
from service.formats.tracking import MAX_GAP

MIN_TRACK_FRAMES: Final = 30


def reading_gap(given: Mapping[str, object]) -> int:
    """The gap the tracker reads the file with: ``given``'s ``max_gap_frames``, else ``MAX_GAP``. Raises
    ``InvalidInput`` naming it when it is not an integer in the core's range (before the file is read)."""
    value = given.get("max_gap_frames")
    if value is None:
        return MAX_GAP
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SELECTION_FRAMES:
        raise InvalidInput(f"max_gap_frames must be between 0 and {MAX_SELECTION_FRAMES}", field="max_gap_frames")
    return value


def file_options(file: KeypointFile, given: Mapping[str, Any]) -> dict[str, Any]:
    """The lift options of ``file``: its own (a MotionLift JSON file's fields), then ``given`` (the caller's),
    then the file defaults of the track policy (not for one unnamed sequence); the format is the file's."""
    options: dict[str, Any] = {**file.options, **{k: v for k, v in given.items() if v is not None}}
    if not file.single:
        options.setdefault("min_track_frames", MIN_TRACK_FRAMES)
        options.setdefault("max_gap_frames", MAX_GAP)
    options["format"] = file.layout
    return options


def file_tracks(file: KeypointFile) -> list[Track]:
    """The file's people as the core's tracks, each from the video frame it starts at (``tracks[i]`` in errors)."""
    return [Track(t.id, t.keypoints, f"tracks[{i}].keypoints", t.start) for i, t in enumerate(file.tracks)]
