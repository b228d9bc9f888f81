"""The server takes what it made at startup out of the garbage collector's sight (service/api/server.py says why:
full collections walking every imported object stopped the loop for 100-170 ms at a time under load)."""

from __future__ import annotations

import gc

import httpx

from service.config import Settings
from service.core.lifter import Lifter
from tests.fakes import FakeBackend
from tests.servers import serve_service


def test_startup_objects_are_frozen_out_of_the_collector() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    settings = Settings()
    with serve_service(settings, Lifter(FakeBackend(), settings)) as url:
        assert httpx.get(f"{url}/readyz").status_code == 200
        frozen = gc.get_freeze_count()
    assert frozen > 10_000  # FastAPI, pydantic, grpc, numpy and the service's own objects
