"""``POST /lift``'s JSON body -> the core's tracks (float32 arrays) and options, parsed once: orjson, then numpy.

No pydantic on this path: a 10,000-frame body is half a million numbers, and validating each as a Python float
cost about 700 ms of event-loop time. Where ``parse`` runs (the loop, a thread or a reader process) is
``reader.BodyReader``'s choice, by size. Every mistake is a ``BadRequest`` (not JSON) or an ``InvalidInput``
naming the field, with the core's messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import orjson

from service.core.arrays import as_array
from service.core.options import LIFT_FIELDS, SELECTION_FIELDS, LiftOptions
from service.core.tracks import Track
from service.core.windows import Capacity
from service.errors import BadRequest, InvalidInput

INLINE_BYTES: Final = 64 * 1024  # smaller bodies parse on the loop: a thread hop would cost more than the parse
TRACK_KEYS: Final = ("id", "keypoints", "start")
BODY_KEYS: Final = ("keypoints", "tracks", *LIFT_FIELDS)


@dataclass(frozen=True)
class LiftBody:
    """A parsed body: its tracks, its options, and the track ids as sent (``None`` for a ``keypoints`` body),
    which the answer echoes with their JSON type."""

    tracks: list[Track]
    options: LiftOptions
    ids: list[str | int] | None


def parse(body: bytes) -> LiftBody:
    """Parse and type-check ``body``; the core checks the values. Raises ``BadRequest`` (not JSON) and
    ``InvalidInput`` (JSON of the wrong shape or types)."""
    data = _load(body)
    if not isinstance(data, dict):
        raise InvalidInput("expected a JSON object {keypoints | tracks, format, ...}", field="body")
    for key in data:
        if key not in BODY_KEYS:
            raise InvalidInput(f"unknown field; expected one of {', '.join(BODY_KEYS)}", field=key)
    keypoints, tracks = data.pop("keypoints", None), data.pop("tracks", None)
    if (keypoints is None) == (tracks is None):
        raise InvalidInput("send exactly one of keypoints (one sequence) or tracks (several)", field="body")
    options = LiftOptions.from_mapping(data)
    if keypoints is not None:
        if options.selects():
            given = next(n for n in SELECTION_FIELDS if getattr(options, n) is not None)
            raise InvalidInput("the track policy chooses among tracks: send tracks, not keypoints", field=given)
        return LiftBody([Track("0", as_array(keypoints, ndim=3, field="keypoints"))], options, None)
    if not isinstance(tracks, list) or not tracks:
        raise InvalidInput("expected a non-empty list of {id, keypoints}", field="tracks")
    parsed: list[Track] = []
    ids: list[str | int] = []
    for i, track in enumerate(tracks):
        where = f"tracks[{i}]"
        if not isinstance(track, dict):
            raise InvalidInput("expected an object {id, keypoints}", field=where)
        for key in track:
            if key not in TRACK_KEYS:
                raise InvalidInput(f"unknown field; expected one of {', '.join(TRACK_KEYS)}", field=f"{where}.{key}")
        ids.append(_track_id(track.get("id"), i, f"{where}.id"))
        if track.get("keypoints") is None:
            raise InvalidInput("required", field=f"{where}.keypoints")
        array = as_array(track["keypoints"], ndim=3, field=f"{where}.keypoints")
        parsed.append(Track(str(ids[-1]), array, f"{where}.keypoints", _start(track.get("start"), f"{where}.start")))
    return LiftBody(parsed, options, ids)


def parse_within(body: bytes, capacity: Capacity | None) -> LiftBody:
    """``parse``, then ``PayloadTooLarge`` when the body's tracks need more windows than the queue can ever hold
    (``capacity``; None: not checked here). A body reader process calls it: a body refused there sends back a
    short error instead of its arrays (tens of MB, unpickled on the loop: measured, 50 ms and more)."""
    parsed = parse(body)
    if capacity is not None:
        frames = [t.keypoints.shape[0] if t.keypoints.ndim else 0 for t in parsed.tracks]
        capacity.check(frames, overlap=parsed.options.overlap, flip=parsed.options.flip)
    return parsed


def _track_id(value: object, index: int, field: str) -> str | int:
    """A track id as sent (a string, or an integer within int64), or the track's index. A number without a
    fraction is the integer it writes (7.0 is 7: JSON Schema's ``integer``, which the OpenAPI document states).
    Length, Unicode and uniqueness are the core's rules (``service.core.tracks``)."""
    if value is None:
        return index
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput("a track id is a string or an integer", field=field)
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise InvalidInput("an integer track id must be within int64", field=field)
    return value


def _start(value: object, field: str) -> int:
    """A track's first video frame: an integer (7.0 is 7, as for ids), 0 when not sent; its range is the core's."""
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"must be an integer (the video frame the track starts at), got {value!r:.40}", field=field)
    return value


def _load(body: bytes) -> object:
    """The JSON value of ``body`` (strict JSON: UTF-8, nesting up to 1024, no NaN). ``BadRequest`` when it is not
    JSON; NaN and Infinity, which Python's ``json.dumps`` writes for non-finite floats, get a message of their
    own."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        start = exc.pos - 1 if body[exc.pos - 1 : exc.pos] == b"-" else exc.pos  # orjson points past a sign
        if body[start : start + 9].lstrip(b"-").startswith((b"NaN", b"Infinity")):
            raise BadRequest(
                f"malformed JSON: NaN and Infinity are not JSON numbers (at byte {start}); every coordinate must be "
                "finite",
                field="body",
            ) from None
        raise BadRequest(f"malformed JSON: {exc}", field="body") from None
