"""A request's tracks: one person's keypoint sequence each, and the rules on the set (count, ids).

Track ids are echoed in answers and logs, so they are short (``MAX_ID_CHARS``), unique within a request (an
answer names each track once) and valid Unicode. They are checked before any work is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from service.core.backend import Array
from service.errors import InvalidInput

MAX_ID_CHARS: Final = 128
MAX_START: Final = 2**31 - 1  # a video frame number; int32 on every wire


@dataclass(frozen=True)
class Track:
    """One person's keypoint sequence ``[T, J, C]`` as received (the core checks it), from video frame ``start``
    on; ``field`` names it in error messages (``tracks[1].keypoints``)."""

    id: str
    keypoints: Array
    field: str = "keypoints"
    start: int = 0  # the video frame of its first frame: answers number frames from it (``filled``)

    @property
    def id_field(self) -> str:
        """Where the track's id is in the request: ``tracks[1].id`` (or ``id`` for a single sequence)."""
        return self.field.removesuffix("keypoints") + "id"

    @property
    def start_field(self) -> str:
        """Where the track's start frame is in the request: ``tracks[1].start``."""
        return self.field.removesuffix("keypoints") + "start"


def check_id(value: str, *, field: str) -> str:
    """``value`` if it is a usable track id; ``InvalidInput`` naming ``field`` when it is too long or not valid
    Unicode (a lone surrogate cannot be written in an answer)."""
    if len(value) > MAX_ID_CHARS:
        raise InvalidInput(f"a track id has at most {MAX_ID_CHARS} characters, got {len(value)}", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("a track id must be valid Unicode text", field=field) from None
    return value


def check_tracks(tracks: Sequence[Track], *, max_tracks: int) -> None:
    """At least one track, at most ``max_tracks``, ids usable and unique. Raises ``InvalidInput``."""
    if not tracks:
        raise InvalidInput("send at least one track (sequence)", field="tracks")
    if len(tracks) > max_tracks:
        raise InvalidInput(f"{len(tracks)} tracks is more than the limit of {max_tracks}", field="tracks")
    seen: set[str] = set()
    for track in tracks:
        check_id(track.id, field=track.id_field)
        if not 0 <= track.start <= MAX_START:
            raise InvalidInput(
                f"start is a video frame from 0 to {MAX_START}, got {track.start}", field=track.start_field
            )
        if track.id in seen:
            raise InvalidInput(f"track id {track.id!r} appears twice; ids must be unique", field=track.id_field)
        seen.add(track.id)
