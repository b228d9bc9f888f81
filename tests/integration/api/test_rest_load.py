"""Backpressure, deadlines, disconnects and metrics through a real uvicorn server (fake model, held open)."""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx

from service.api.rest.app import create_app
from service.config import Settings
from service.core.lifter import Lifter
from tests.data import walk
from tests.fakes import FakeBackend
from tests.servers import serve_rest, until

BODY = {"keypoints": walk(5), "format": "coco", "image_size": [1920, 1080]}


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def held(settings: Settings) -> tuple[FakeBackend, threading.Event, Lifter]:
    """A fake model that holds every batch until the event is set, and a lifter on it."""
    backend = FakeBackend()
    backend.hold = hold = threading.Event()
    return backend, hold, Lifter(backend, settings)


def test_metrics_count_requests_batches_and_stages() -> None:
    lifter = Lifter(FakeBackend(), Settings())
    with serve_rest(create_app(lifter)) as url:
        for _ in range(3):
            assert httpx.post(f"{url}/lift", json=BODY).status_code == 200
        assert httpx.post(f"{url}/lift", json={**BODY, "format": "x"}).status_code == 422
        assert httpx.post(f"{url}/lift", json={**BODY, "keypoints": []}).status_code == 422
        text = httpx.get(f"{url}/metrics").text
        assert metric(url, 'motionlift_requests_total{outcome="ok",protocol="rest"}') == 3
        assert (
            metric(url, 'motionlift_requests_total{outcome="invalid_input",protocol="rest"}') == 2
        )  # refused bodies count too
        assert metric(url, "motionlift_windows_total") == 6  # 3 x (window + flipped copy)
        assert metric(url, "motionlift_frames_total") == 30
        assert metric(url, "motionlift_batch_size_count") == 3
        assert metric(url, 'motionlift_request_stage_seconds_count{stage="queue"}') == 3
        assert metric(url, "motionlift_queue_depth") == 0
        assert metric(url, "motionlift_ready") == 1
        assert "motionlift_model_compute_seconds_bucket" in text


def test_full_queue_rejects_fast_with_retry_after_and_recovers() -> None:
    backend, hold, lifter = held(Settings(max_queued_windows=4, max_batch_size=2))
    with serve_rest(create_app(lifter)) as url:

        async def flood() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                first = asyncio.create_task(client.post("/lift", json=BODY))
                await asyncio.to_thread(backend.running.wait)  # the model is busy with the first request
                rest = [asyncio.create_task(client.post("/lift", json=BODY)) for _ in range(40)]
                done = 0
                while done < 38:  # 2 requests fill the 4-window queue; 38 must be rejected while it is held
                    done = sum(t.done() for t in rest)
                    await asyncio.sleep(0.005)
                hold.set()
                return [await first, *[await t for t in rest]]

        answers = asyncio.run(flood())
        codes = sorted(r.status_code for r in answers)
        assert codes == [200] * 3 + [503] * 38
        rejected = next(r for r in answers if r.status_code == 503)
        assert rejected.headers["retry-after"].isdigit() and int(rejected.headers["retry-after"]) >= 1
        assert rejected.json()["error"]["code"] == "overloaded"
        assert httpx.post(f"{url}/lift", json=BODY).status_code == 200  # and it serves normally afterwards
        assert metric(url, 'motionlift_requests_total{outcome="overloaded",protocol="rest"}') == 38


def test_deadline_while_queued_is_504_and_never_computed() -> None:
    backend, hold, lifter = held(Settings(timeout_s=0.3, max_batch_size=1))
    with serve_rest(create_app(lifter)) as url:
        r = httpx.post(f"{url}/lift", json=BODY, timeout=10)
        assert r.status_code == 504
        assert r.json()["error"]["code"] == "deadline_exceeded"
        assert backend.batches == [(1, 5, 17, 3)]  # the first window was running; its flipped copy never ran
        hold.set()
        until(lambda: metric(url, "motionlift_queue_depth") == 0, "the queue to drain")
        assert backend.batches == [(1, 5, 17, 3)]


def test_client_that_disconnects_has_its_windows_dropped() -> None:
    backend, hold, lifter = held(Settings(max_batch_size=1))
    with serve_rest(create_app(lifter)) as url:
        host, port = url.removeprefix("http://").split(":")
        first = threading.Thread(target=lambda: httpx.post(f"{url}/lift", json=BODY, timeout=30))
        first.start()
        backend.running.wait(10)
        payload = httpx.Request("POST", f"{url}/lift", json=BODY)
        body = payload.read()
        with socket.create_connection((host, int(port))) as raw:
            head = f"POST /lift HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
            raw.sendall(head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body)
            until(lambda: metric(url, "motionlift_queue_depth") == 3, "the second request to queue")
        until(lambda: metric(url, 'motionlift_requests_total{outcome="cancelled",protocol="rest"}') == 1, "the drop")
        hold.set()
        first.join(30)
        assert len(backend.batches) == 2  # the first request's window and flipped copy; nothing of the second
        assert metric(url, "motionlift_queue_depth") == 0
