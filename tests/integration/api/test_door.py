"""The door of the real server (``service/api/rest/protocol.py`` under ``uvicorn_server``): a refusal at admission
waits ``refusal_delay_ms`` before it is sent, keeps the connection usable and the order of pipelined answers."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time

import httpx
import pytest

from service.config import Settings
from service.core.lifter import Lifter
from tests.data import walk
from tests.fakes import FakeBackend
from tests.servers import serve_service, until

BODY = json.dumps({"keypoints": walk(27), "format": "coco", "image_size": [1920, 1080]}).encode()
DELAY_MS = 300.0


def _post(body: bytes, extra: str = "") -> bytes:
    head = f"POST /lift HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
    return (head + extra + "\r\n").encode() + body


def _answers(s: socket.socket, count: int) -> list[bytes]:
    """Read ``count`` HTTP answers (each with a content-length) from ``s``."""
    data, answers = b"", list[bytes]()
    while len(answers) < count:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        while b"\r\n\r\n" in data:
            head, rest = data.split(b"\r\n\r\n", 1)
            length = next(
                int(v) for k, v in (h.split(b":", 1) for h in head.split(b"\r\n")[1:]) if k.lower() == b"content-length"
            )
            if len(rest) < length:
                break
            answers.append(head + b"\r\n\r\n" + rest[:length])
            data = rest[length:]
    return answers


def test_a_refusal_waits_its_delay_keeps_the_connection_and_the_order_of_answers() -> None:
    backend = FakeBackend()
    backend.hold = threading.Event()
    settings = Settings(max_queued_windows=2, max_batch_size=2, refusal_delay_ms=DELAY_MS)
    lifter = Lifter(backend, settings)
    with serve_service(settings, lifter) as url:
        port = int(url.rsplit(":", 1)[1])

        async def full_queue() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                running = asyncio.create_task(client.post("/lift", content=BODY))  # 2 windows: in the model
                await asyncio.to_thread(backend.running.wait)
                queued = asyncio.create_task(client.post("/lift", content=BODY))  # 2 windows: the queue is full
                await asyncio.to_thread(until, lambda: lifter.batcher.queued == 2, "the queue to fill")
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    t0 = time.monotonic()
                    s.sendall(_post(BODY))
                    [refused] = await asyncio.to_thread(_answers, s, 1)
                    waited_ms = 1000 * (time.monotonic() - t0)
                    # The same connection: a refusal and a health check sent together come back in order.
                    s.sendall(_post(BODY) + b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                    pipelined = await asyncio.to_thread(_answers, s, 2)
                backend.hold.set()  # type: ignore[union-attr]
                assert [(await running).status_code, (await queued).status_code] == [200, 200]
                assert refused.startswith(b"HTTP/1.1 503") and b'"code": "overloaded"' in refused, refused[:300]
                # uvloop's timers (libuv) count whole milliseconds from the time cached when the loop last woke,
                # so one may fire up to a millisecond early (seen: 299.89 ms for 300).
                assert waited_ms >= DELAY_MS - 1, waited_ms
                assert [a.split(b"\r\n", 1)[0] for a in pipelined] == [
                    b"HTTP/1.1 503 Service Unavailable",
                    b"HTTP/1.1 200 OK",
                ]

        asyncio.run(full_queue())


def test_the_door_lets_in_only_what_the_queue_can_take() -> None:
    """Twelve clients at once against room for two 2-window requests: the door reserves room per request, so
    the ones it lets in are the ones the queue takes; the rest are refused at the door, before their body."""
    backend = FakeBackend()
    backend.hold = threading.Event()
    settings = Settings(max_queued_windows=4, max_batch_size=2, refusal_delay_ms=0)
    lifter = Lifter(backend, settings)
    lifter.door.typical = 2.0  # as learnt from earlier 2-window requests
    with serve_service(settings, lifter) as url:

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                first = asyncio.create_task(client.post("/lift", content=BODY))  # in the model, held
                await asyncio.to_thread(backend.running.wait)
                others = [asyncio.create_task(client.post("/lift", content=BODY)) for _ in range(12)]
                await asyncio.to_thread(until, lambda: sum(t.done() for t in others) >= 10, "the refusals")
                backend.hold.set()  # type: ignore[union-attr]
                return [(await first).status_code, *sorted([(await t).status_code for t in others])]

        statuses = asyncio.run(burst())
    assert statuses == [200, 200, 200] + [503] * 10
    assert lifter.door.held == 0  # the two it let in reached the queue and gave their reservations back


def test_a_request_the_queue_could_never_hold_does_not_lock_the_door() -> None:
    settings = Settings(max_queued_windows=8)
    with serve_service(settings, Lifter(FakeBackend(window=27), settings)) as url:
        body = {"keypoints": walk(60), "format": "coco", "image_size": [1920, 1080]}
        never = httpx.post(f"{url}/lift", json={**body, "keypoints": walk(2000)})  # 100+ windows with flip
        after = [httpx.post(f"{url}/lift", json=body).status_code for _ in range(3)]
    assert never.status_code == 413
    assert after == [200, 200, 200]


def test_a_door_refusal_carries_one_request_id_in_its_header_body_and_audit_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The client's ``x-request-id`` (at most 128 characters) or a fresh one: the same in the 503's header, its
    error body and the audit line, so a refused request can be found in the logs as an admitted one can."""
    backend = FakeBackend()
    backend.hold = threading.Event()
    settings = Settings(max_queued_windows=2, max_batch_size=2, refusal_delay_ms=0)
    lifter = Lifter(backend, settings)
    caplog.set_level(logging.INFO, logger="motionlift.audit")
    with serve_service(settings, lifter) as url:
        port = int(url.rsplit(":", 1)[1])

        async def full_queue() -> list[bytes]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                running = asyncio.create_task(client.post("/lift", content=BODY))
                await asyncio.to_thread(backend.running.wait)
                queued = asyncio.create_task(client.post("/lift", content=BODY))
                await asyncio.to_thread(until, lambda: lifter.batcher.queued == 2, "the queue to fill")
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(_post(BODY, "x-request-id: door-42\r\n") + _post(BODY, f"x-request-id: {'a' * 200}\r\n"))
                    s.sendall(_post(BODY))
                    refused = await asyncio.to_thread(_answers, s, 3)
                backend.hold.set()  # type: ignore[union-attr]
                assert [(await running).status_code, (await queued).status_code] == [200, 200]
                return refused

        refused = asyncio.run(full_queue())
    ids = []
    for answer in refused:
        head, body = answer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 503"), head
        header = next(h.split(b": ", 1)[1] for h in head.split(b"\r\n") if h.lower().startswith(b"x-request-id:"))
        assert json.loads(body)["error"]["request_id"] == header.decode()
        ids.append(header.decode())
    assert ids[:2] == ["door-42", "a" * 128] and len(ids[2]) == 32 and ids[2] not in ids[:2]
    audit = [
        r.getMessage()
        for r in caplog.records
        if r.name == "motionlift.audit" and "outcome=overloaded" in r.getMessage()
    ]
    assert [line.split(" request=", 1)[1].split(" ", 1)[0] for line in audit] == ids, audit
