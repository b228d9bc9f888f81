"""Admission before work, through real servers: a full queue refuses a request before its body is read, large
bodies are read in a worker process (and their mistakes still name the field), and a request the queue could
never hold is 413, not an invitation to retry."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any

import httpx

from service.api.rest.app import create_app
from service.api.rest.reader import PROCESS_BYTES
from service.config import Settings
from service.core.lifter import Lifter
from tests.data import walk
from tests.fakes import FakeBackend
from tests.servers import serve_rest, until

BODY = {"keypoints": walk(27), "format": "coco", "image_size": [1920, 1080]}


def _headers_only(port: int, length: int) -> bytes:
    """Send a request's headers announcing ``length`` body bytes, none of them, and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        head = f"POST /lift HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
        s.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_a_full_queue_refuses_before_reading_the_body() -> None:
    backend = FakeBackend()
    backend.hold = threading.Event()
    lifter = Lifter(backend, Settings(max_queued_windows=2, max_batch_size=2))
    with serve_rest(create_app(lifter)) as url:

        async def fill() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                running = asyncio.create_task(client.post("/lift", json=BODY))  # 2 windows: in the model
                await asyncio.to_thread(backend.running.wait)
                queued = asyncio.create_task(client.post("/lift", json=BODY))  # 2 windows: the queue is full
                await asyncio.to_thread(until, lambda: lifter.batcher.queued == 2, "the queue to fill")
                port = int(url.rsplit(":", 1)[1])
                # The answer comes although not one byte of the announced body was sent.
                refused = await asyncio.to_thread(_headers_only, port, 10_000_000)
                assert refused.startswith(b"HTTP/1.1 503"), refused[:200]
                assert b'"code":"overloaded"' in refused and b"retry-after:" in refused.lower()
                backend.hold.set()  # type: ignore[union-attr]
                return [await running, await queued]

        answers = asyncio.run(fill())
    assert [r.status_code for r in answers] == [200, 200]


def test_a_large_body_is_read_in_a_worker_process_and_its_mistakes_name_the_field(rest_url: str) -> None:
    frames = walk(1900)
    tracks: list[dict[str, Any]] = [{"id": "a", "keypoints": frames}, {"id": "b", "keypoints": frames}]
    bad = [*tracks, {"id": "c", "keypoints": [*frames[:10], [[1.0, 2.0, -0.5]] * 17]}]
    content = json.dumps({"tracks": bad, "format": "coco"}).encode()
    assert len(content) > PROCESS_BYTES  # read by a worker process, not on the loop nor in a thread
    r = httpx.post(f"{rest_url}/lift", content=content, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["field"], error["message"][:24]) == ("tracks[2].keypoints[10][0][2]", "score -0.5 is negative; ")
    good = json.dumps({"tracks": tracks, "format": "coco"}).encode()
    assert len(good) > PROCESS_BYTES
    ok = httpx.post(f"{rest_url}/lift", content=good, headers={"content-type": "application/json"}, timeout=60)
    assert ok.status_code == 200 and [t["frames"] for t in ok.json()["tracks"]] == [1900, 1900]


def test_a_request_the_queue_could_never_hold_is_413() -> None:
    lifter = Lifter(FakeBackend(window=27), Settings(max_queued_windows=8))
    with serve_rest(create_app(lifter)) as url:
        fits = httpx.post(f"{url}/lift", json={**BODY, "keypoints": walk(60)})  # 3 windows, 6 with flip
        never = httpx.post(f"{url}/lift", json={**BODY, "keypoints": walk(100)})  # 5 windows, 10 with flip
    assert fits.status_code == 200
    assert never.status_code == 413 and "retry-after" not in never.headers
    assert never.json()["error"]["message"] == (
        "the request needs 10 model windows and the queue holds at most 8 (--max-queued-windows); send fewer "
        "frames or tracks per request"
    )
