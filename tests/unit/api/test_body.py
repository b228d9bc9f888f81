"""A body that could never be queued is refused where it is parsed (a body reader process), before its arrays
travel back to the service; the message is the core's own."""

from __future__ import annotations

import json

import pytest

from service.api.rest.body import parse_within
from service.core.windows import Capacity
from service.errors import InvalidInput, PayloadTooLarge
from tests.data import walk


def _body(frames: int, **options: object) -> bytes:
    return json.dumps({"keypoints": walk(frames), "format": "coco", "image_size": [640, 480], **options}).encode()


def test_a_body_over_the_queue_is_refused_with_the_cores_message() -> None:
    capacity = Capacity(window=27, overlap=6, max_windows=8)
    assert len(parse_within(_body(60), capacity).tracks) == 1  # 3 windows, 6 with flip
    with pytest.raises(PayloadTooLarge) as info:
        parse_within(_body(100), capacity)  # 5 windows, 10 with flip
    assert (info.value.field, info.value.message) == (
        "tracks",
        "the request needs 10 model windows and the queue holds at most 8 (--max-queued-windows); send fewer "
        "frames or tracks per request",
    )
    assert len(parse_within(_body(100, flip=False), capacity).tracks) == 1  # 5 windows without flip
    assert len(parse_within(_body(100), None).tracks) == 1  # no capacity known: the core decides


def test_an_overlap_the_core_refuses_is_left_to_it() -> None:
    capacity = Capacity(window=27, overlap=6, max_windows=8)
    assert len(parse_within(_body(100, overlap=27), capacity).tracks) == 1  # the core answers 422 for it
    with pytest.raises(InvalidInput):
        parse_within(b'{"keypoints": 1}', capacity)
