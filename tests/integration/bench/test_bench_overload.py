"""The overload benchmark's gRPC generator, briefly, against the session's real service (tiny model): its
prepared bytes are a valid ``LiftRequest`` and every call is counted once, by outcome."""

from __future__ import annotations

import pytest

from service.bench.load import request_body
from service.bench.overload import _grpc_clients
from tests.conftest import Served

pytestmark = pytest.mark.slow


async def test_prepared_bytes_are_answered_and_every_call_is_counted(served: Served) -> None:
    ok, refused, other = await _grpc_clients(served.grpc_target, request_body(12, flip=True), clients=2, seconds=0.5)
    assert other == 0 and refused == []  # the session's queue is large: nothing refused, nothing malformed
    assert len(ok) >= 2 and min(ok) > 0
