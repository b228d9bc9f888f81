"""``POST /lift`` answered as BVH: ``Accept: application/x-bvh`` gives the lifted track as a BVH file
(``service.motion.bvh``: skeleton, axes, units and rest pose are documented there) instead of JSON. Query
parameters: ``fps`` (the video's frame rate, default 30) and ``height_m`` (the subject's height, default 1.70).
One BVH holds one track: a request with several tracks is 406, naming the way to get one file per track.
Formatting a long sequence holds the GIL, so it runs where its size says (``reader.BodyReader.route``).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Final

from fastapi import Request, Response

from service.api.rest.reader import BodyReader
from service.core.results import LiftResult
from service.errors import InvalidInput, NotAcceptable
from service.motion import bvh

MEDIA: Final = "application/x-bvh"
BYTES_PER_FRAME: Final = 400  # a BVH frame line of 17 joints: what `route` sizes the work by


def wants_bvh(request: Request) -> bool:
    return MEDIA in request.headers.get("accept", "")


def _number(request: Request, name: str, default: float) -> float:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"must be a number, got {text[:40]!r}", field=name) from None
    if not math.isfinite(value):
        raise InvalidInput("must be a finite number", field=name)
    return value


def bvh_parameters(request: Request) -> tuple[float, float]:
    """``fps`` and ``height_m`` of the query, checked whenever they are given (before any work, and whatever the
    ``Accept``: a parameter out of its documented range is a mistake even when it is not used); ``InvalidInput``
    naming the parameter."""
    fps, height = _number(request, "fps", 30.0), _number(request, "height_m", bvh.DEFAULT_HEIGHT_M)
    if not (0 < fps <= 1000):
        raise InvalidInput(f"fps must be in (0, 1000], got {fps:g}", field="fps")
    if not (0.3 <= height <= 3.0):
        raise InvalidInput(f"height_m must be between 0.3 and 3.0 metres, got {height:g}", field="height_m")
    return fps, height


async def bvh_answer(request: Request, result: LiftResult, reader: BodyReader) -> Response:
    """The BVH of ``result``'s one track; ``NotAcceptable`` for several, ``InvalidInput`` for a bad parameter."""
    fps, height = bvh_parameters(request)
    if len(result.tracks) != 1:
        raise NotAcceptable(
            f"a BVH file holds one track and the answer has {len(result.tracks)}: send one track per request, or "
            "use `motionlift lift --out motion.bvh`, which writes one file per track",
            field="accept",
        )
    track = result.tracks[0]
    size = len(track.joints3d) * BYTES_PER_FRAME
    text = await reader.route(size, partial(bvh.write, fps=fps, height_m=height), track.joints3d)
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in track.id)[:64] or "track"
    headers = {"content-disposition": f'attachment; filename="{name}.bvh"'}
    return Response(text, media_type=MEDIA, headers=headers)
