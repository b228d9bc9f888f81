"""The body reader's path for large bodies (service/api/rest/reader.py): chunks go to a worker process through an
in-memory file as they arrive, the answer is the one the joined body gives, and the file is closed whatever
happens; where the worker cannot open the file, the bytes are sent instead."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import numpy as np
import pytest
from starlette.requests import ClientDisconnect

from service.api.rest import body as lift_body
from service.api.rest.reader import PROCESS_BYTES, BodyReader
from service.errors import InvalidInput
from tests.data import walk

BODY = json.dumps({"format": "coco", "tracks": [{"id": i, "keypoints": walk(1000)} for i in range(8)]}).encode()


async def chunks(content: bytes, *, leave_after: int | None = None) -> AsyncIterator[bytes]:
    for n, start in enumerate(range(0, len(content), 65536)):
        if leave_after is not None and n == leave_after:
            raise ClientDisconnect()
        yield content[start : start + 65536]


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
async def reader() -> AsyncIterator[BodyReader]:
    body_reader = BodyReader(1)
    await body_reader.start()
    yield body_reader
    await body_reader.close()


def same(a: lift_body.LiftBody, b: lift_body.LiftBody) -> None:
    assert (a.ids, a.options) == (b.ids, b.options)
    for x, y in zip(a.tracks, b.tracks, strict=True):
        assert (x.id, x.field, x.start) == (y.id, y.field, y.start)
        np.testing.assert_array_equal(x.keypoints, y.keypoints)


async def test_a_large_body_is_read_through_a_file_and_the_file_is_closed(reader: BodyReader) -> None:
    assert len(BODY) > PROCESS_BYTES
    before = open_fds()
    same(await reader.parse_chunks(chunks(BODY), reserved=True), lift_body.parse(BODY))
    assert open_fds() == before
    with pytest.raises(ClientDisconnect):
        await reader.parse_chunks(chunks(BODY, leave_after=3), reserved=True)
    assert open_fds() == before
    broken = BODY.replace(b"0.9]", b'"0.9"]', 1)
    with pytest.raises(InvalidInput) as caught:
        await reader.parse_chunks(chunks(broken), reserved=True)
    assert (caught.value.field, caught.value.message) == ("tracks[0].keypoints[0][0][2]", "coordinates must be numbers")
    assert open_fds() == before


async def test_where_the_worker_cannot_open_the_file_the_body_is_sent(
    reader: BodyReader, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(os, "getpid", lambda: 2**22 + 7)  # no such process: /proc/<pid>/fd fails
    same(await reader.parse_chunks(chunks(BODY), reserved=True), lift_body.parse(BODY))
    assert "a body reader cannot open the body's file" in caplog.text
