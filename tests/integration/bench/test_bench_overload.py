"""The overload benchmark's gRPC generators, briefly, against the session's real service (tiny model): the
asyncio clients' and h2load's prepared bytes are a valid ``LiftRequest`` and every call is counted once, by outcome;
how h2load's calls are split by outcome."""

from __future__ import annotations

import pytest

from service.bench import h2load
from service.bench.grpc_load import lift_request
from service.bench.load import request_body
from service.bench.overload import LIFT_METHOD, _grpc_clients
from tests.conftest import Served

pytestmark = pytest.mark.slow


async def test_prepared_bytes_are_answered_and_every_call_is_counted(served: Served) -> None:
    ok, refused, other = await _grpc_clients(served.grpc_target, request_body(12, flip=True), clients=2, seconds=0.5)
    assert other == 0 and refused == []  # the session's queue is large: nothing refused, nothing malformed
    assert len(ok) >= 2 and min(ok) > 0


def test_grpc_frame_is_the_length_prefixed_message() -> None:
    assert h2load.grpc_frame(b"\x08\x01") == b"\x00\x00\x00\x00\x02\x08\x01"
    assert h2load.grpc_frame(b"") == b"\x00\x00\x00\x00\x00"


def test_split_takes_the_slowest_as_the_successes_and_shows_the_cut() -> None:
    ok, refused = h2load.split([30.0, 400.0, 25.0, 350.0, 41.0], ok=2)
    assert (ok, refused) == ([350.0, 400.0], [25.0, 30.0, 41.0])
    assert h2load.gap(ok, refused) == (41.0, 350.0)
    assert h2load.split([5.0, 6.0], ok=0) == ([], [5.0, 6.0]) and h2load.gap([], [5.0, 6.0]) is None
    assert h2load.split([5.0], ok=3) == ([5.0], [])  # more successes counted than calls logged: none refused


@pytest.mark.skipif(not h2load.available(), reason="h2load is not installed (Debian: nghttp2-client)")
def test_h2load_calls_lift_and_the_service_counts_each_call(served: Served) -> None:
    before = h2load.requests_total(served.rest_url, "grpc")
    message = lift_request(request_body(12, flip=True)).SerializeToString()
    durations = h2load.run(served.grpc_target, LIFT_METHOD, message, clients=2, seconds=1.0, nice=0)
    after = h2load.requests_total(served.rest_url, "grpc")
    ok = after["ok"] - before.get("ok", 0.0)
    assert len(durations) >= 2 and min(durations) > 0
    # every logged call was a valid LiftRequest answered OK; at most the 2 calls in flight at the end differ
    assert 0 <= ok - len(durations) <= 2, (ok, len(durations), after)
    changed = {outcome for outcome, n in after.items() if n != before.get(outcome, 0.0)}
    assert changed <= {"ok", "cancelled"}, after  # nothing malformed, refused or failed
