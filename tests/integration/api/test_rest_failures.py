"""Failures that are not the caller's fault: a 500 with a request id and a log line, never a traceback."""

from __future__ import annotations

import logging
from typing import NoReturn

import httpx
import pytest

from service.api.rest.app import create_app
from service.config import Settings
from service.core.lifter import Lifter
from tests.data import walk
from tests.fakes import FakeBackend
from tests.servers import serve_rest

BODY = {"keypoints": walk(5), "format": "coco", "image_size": [1920, 1080]}


def test_backend_failure_is_500_with_request_id(caplog: pytest.LogCaptureFixture) -> None:
    lifter = Lifter(FakeBackend(fail=ZeroDivisionError("boom")), Settings())
    with serve_rest(create_app(lifter)) as url, caplog.at_level(logging.ERROR):
        r = httpx.post(f"{url}/lift", json=BODY)
    assert r.status_code == 500
    error = r.json()["error"]
    assert (error["code"], error["message"]) == ("backend_error", "batch failed: ZeroDivisionError")
    assert "boom" not in r.text and "Traceback" not in r.text
    assert any("batch 1 failed" in m for m in caplog.messages)


def test_unexpected_error_is_500_with_request_id_in_body_and_log(caplog: pytest.LogCaptureFixture) -> None:
    lifter = Lifter(FakeBackend(), Settings())

    async def broken(*_: object, **__: object) -> NoReturn:
        raise RuntimeError("secret internals")

    lifter.lift = broken  # type: ignore[method-assign]
    with serve_rest(create_app(lifter)) as url, caplog.at_level(logging.ERROR):
        r = httpx.post(f"{url}/lift", json=BODY, headers={"x-request-id": "req-42"})
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal", "message": "internal error", "request_id": "req-42"}}
    assert "secret" not in r.text
    assert any("req-42" in m for m in caplog.messages)


def test_not_ready_is_503_and_readyz_false() -> None:
    backend = FakeBackend()
    lifter = Lifter(backend, Settings())
    with serve_rest(create_app(lifter)) as url:
        backend._ready = False  # as while a remote model restarts
        assert httpx.get(f"{url}/readyz").status_code == 503
        r = httpx.post(f"{url}/lift", json=BODY)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "unavailable"
