"""Our own layout: the body of ``POST /lift`` (``keypoints`` or ``tracks``, ``format``, options).

``{"keypoints": [[[x, y(, s)] * J] * T], "format": ..., <options>}`` is one unnamed sequence;
``{"tracks": [{"id"?, "keypoints"}, ...], ...}`` is several, ids defaulting to their position. The other
fields (``image_size``, ``flip``...) are passed on as given and checked where they are used
(``LiftOptions.from_mapping``). The sequences are complete already: no tracking, every frame ``detected``.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from service.core.backend import Array
from service.core.options import FORMATS
from service.formats.detections import KeypointFileError
from service.formats.tracking import TrackSequence

# Keys of a POST /lift body that are not options (everything else is passed on to LiftOptions.from_mapping).
SEQUENCE_KEYS: Final = ("keypoints", "tracks", "format")


def is_body(data: Any) -> bool:
    return isinstance(data, dict) and ("keypoints" in data or "tracks" in data)


def _sequence(value: Any, where: str) -> Array:
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError):
        raise KeypointFileError(f"{where}: expected frames x joints x [x, y(, score)] numbers") from None
    if array.ndim != 3 or array.shape[0] == 0:
        raise KeypointFileError(f"{where}: expected frames x joints x [x, y(, score)], got shape {list(array.shape)}")
    return array


def read(data: Any, layout: str | None) -> tuple[str, tuple[TrackSequence, ...], dict[str, Any]]:
    """(format, tracks, options) of a ``POST /lift`` body; ``layout`` overrides its ``format``."""
    if not isinstance(data, dict) or ("keypoints" in data) == ("tracks" in data):
        raise KeypointFileError("a POST /lift body needs exactly one of keypoints or tracks")
    fmt = layout or data.get("format")
    if fmt not in FORMATS:
        raise KeypointFileError(f"format: {fmt!r} is not one of {', '.join(FORMATS)} (set it with --format)")
    if "keypoints" in data:
        tracks: tuple[TrackSequence, ...] = (TrackSequence("0", _sequence(data["keypoints"], "keypoints")),)
    else:
        if not isinstance(data["tracks"], list) or not data["tracks"]:
            raise KeypointFileError("tracks: expected a non-empty list of {id, keypoints}")
        found = []
        for i, t in enumerate(data["tracks"]):
            if not isinstance(t, dict):
                raise KeypointFileError(f"tracks[{i}]: expected an object {{id, keypoints}}")
            found.append(TrackSequence(str(t.get("id", i)), _sequence(t.get("keypoints"), f"tracks[{i}].keypoints")))
        tracks = tuple(found)
    return str(fmt), tracks, {k: v for k, v in data.items() if k not in SEQUENCE_KEYS}
