"""Discovery under load, with REAL tritonservers: the gateway follows ``dns:///NAME:PORT`` through a resolver the
test controls (never real DNS) while clients keep calling its REST API. Replicas join (one of them named before
its server is up: it joins only once its model is ready) and leave (one removed from the name before it stops, one
crashing while still named); no request fails, the joiners serve, and a leaver gets nothing after it left.

Layout, as Kubernetes pods behind a headless Service: three servers on three loopback addresses (127.0.0.1-3,
all loopback on Linux) sharing ONE gRPC port, so the name's records are bare addresses and the port comes from
the URL, as with real A records. Each server's own request count comes from Triton's statistics API.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.core.lifter import Lifter
from tests.data import REPO
from tests.dns import Records
from tests.servers import serve_app
from tests.servers import until as wait_for
from tests.tritonserver import export_twin, skip_without_triton

skip_without_triton()

from service.api.server import triton_backend  # noqa: E402  (after the skip: needs tritonclient)
from service.bench.process import free_port  # noqa: E402
from service.bench.tritonserver import LocalTriton  # noqa: E402

pytestmark = pytest.mark.slow
NAME = "triton-headless.discovery.test"  # known only to the test's resolver
A, B, C = "127.0.0.1", "127.0.0.2", "127.0.0.3"
BODY = (REPO / "tests" / "fixtures" / "example_request.json").read_bytes()


class Load:
    """``clients`` threads calling ``POST /lift`` back to back until stopped; every answer that is not 200 is kept."""

    def __init__(self, url: str, clients: int = 2) -> None:
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(f"{self.url}/lift", content=BODY, headers={"content-type": "application/json"})
                    failure = None if r.status_code == 200 else f"{r.status_code} {r.text}"
                except httpx.HTTPError as exc:
                    failure = repr(exc)
                with self._lock:
                    if failure is None:
                        self.ok += 1
                    else:
                        self.failures.append(failure)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def served(server: LocalTriton) -> int:
    """Requests the server's model completed (Triton's statistics API)."""
    stats = httpx.get(f"{server.http_url}/v2/models/dstformer/stats", timeout=10).json()
    return sum(int(m["inference_stats"]["success"]["count"]) for m in stats["model_stats"])


def until(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    """Wait, asking every 0.1 s: each ask is HTTP calls to the servers, which share the CPU with the load."""
    wait_for(condition, what, seconds, poll_s=0.1)


def gauges(url: str) -> tuple[int, int]:
    """The gateway's (servers named now, servers in rotation), from its /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    known = re.search(r"^motionlift_triton_servers (\S+)$", text, re.M)
    ready = re.search(r"^motionlift_triton_servers_ready (\S+)$", text, re.M)
    assert known and ready, "the gauges are missing from /metrics"
    return int(float(known[1])), int(float(ready[1]))


@contextmanager
def tritons(repository: Path, hosts: tuple[str, ...]) -> Iterator[dict[str, LocalTriton]]:
    """A server (not started) per host, all on one gRPC port; every one stopped and cleaned at exit."""
    port = free_port()
    servers = {h: LocalTriton(repository, host=h, grpc_port=port) for h in hosts}
    try:
        yield servers
    finally:
        for s in servers.values():
            s.close()


def serve_more(servers: list[LocalTriton], n: int, what: str) -> None:
    """Wait until ``servers`` together completed ``n`` more requests."""
    base = sum(served(s) for s in servers)
    until(lambda: sum(served(s) for s in servers) >= base + n, what)


def test_replicas_join_and_leave_under_load_without_a_failed_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    export_twin(tmp_path)
    dns = Records({NAME: [A]})
    with tritons(tmp_path / "cpu", (A, B, C)) as server:
        with ThreadPoolExecutor(2) as pool:  # A and B start together (C starts later, under load)
            list(pool.map(lambda s: s.start(), (server[A], server[B])))
        port = server[A].grpc_port
        warm = served(server[B])  # the model's warm-up runs count as requests too
        settings = Settings(backend="triton", triton_urls=[f"dns:///{NAME}:{port}"], triton_resolve_s=0.2)
        lifter = Lifter(triton_backend(settings, dns), settings)
        log = "service.backends.triton.backend"
        with caplog.at_level(logging.INFO, logger=log), serve_app(settings, lifter) as (url, _), Load(url) as load:
            until(lambda: load.ok >= 5, "requests through the gateway")
            assert gauges(url) == (1, 1) and served(server[B]) == warm

            # B joins: a new record, its server already up.
            dns.names[NAME] = [A, B]
            until(lambda: gauges(url) == (2, 2), "B in rotation")
            until(lambda: served(server[B]) > warm, "B serving")

            # C is named before its server is up: it is known, not in rotation, and fails nothing.
            dns.names[NAME] = [A, B, C]
            until(lambda: gauges(url)[0] == 3, "C known")
            assert gauges(url) == (3, 2)
            server[C].start()
            warm = served(server[C])
            until(lambda: gauges(url) == (3, 3), "C in rotation once its model is ready")
            until(lambda: served(server[C]) > warm, "C serving")

            # B leaves the name while it runs: once the calls it had in flight are done, it gets nothing more.
            dns.names[NAME] = [A, C]
            until(lambda: gauges(url) == (2, 2), "B out of rotation")
            serve_more([server[A], server[C]], 10, "A and C serving")
            after = served(server[B])
            serve_more([server[A], server[C]], 10, "A and C serving on")
            assert served(server[B]) == after

            # B is named again (a flapping record) and serves again; then it shuts down (SIGTERM) while still
            # named, as a Kubernetes pod whose record outlives it in DNS caches.
            dns.names[NAME] = [A, B, C]
            until(lambda: served(server[B]) > after, "B serving again")
            server[B].stop()
            until(lambda: gauges(url) == (3, 2), "B out of rotation once stopped")
            serve_more([server[A], server[C]], 10, "A and C serving without B")

            # C hangs while still named (its calls in flight wait), drops out of rotation when its readiness check
            # times out, then crashes: the calls it had fail and are retried on A. Then both leave the name.
            server[C].freeze()
            until(lambda: gauges(url) == (3, 1), "C out of rotation while hung")
            server[C].stop(kill=True)
            serve_more([server[A]], 10, "A serving alone")
            dns.names[NAME] = [A]
            until(lambda: gauges(url) == (1, 1), "B and C out of the rotation")
        assert load.failures == []
        assert load.ok >= 5 + 20 + 10 + 10  # at least the requests waited for (a Triton request answers one or more)
    messages = [r.getMessage() for r in caplog.records if r.name == log]
    assert f"Triton at {C}:{port} failed a batch with UNAVAILABLE; trying another server" in messages
    for host in (B, C):
        assert f"Triton server {host}:{port} joins: in rotation once model 'dstformer' is ready there" in messages
        assert any(m.startswith(f"Triton server {host}:{port} left the rotation") for m in messages), host
