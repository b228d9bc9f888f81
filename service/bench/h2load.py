"""Unary gRPC load from ``h2load`` (nghttp2's HTTP/2 benchmark, Debian package ``nghttp2-client``): a compiled
client, so at 10x overload the load generator does not take the cores of the server it measures, as a Python
gRPC client does (~0.4 ms of CPU per call, as much as the server's own refusal).

h2load speaks HTTP/2, not gRPC: it POSTs one prepared body (the message in gRPC's length-prefixed framing,
https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md) with gRPC's headers, and it never reads the
``grpc-status`` trailer, so every call it logs is HTTP 200. The outcome of each call is therefore not known
per call; ``split`` takes the counts by outcome from the service's own metrics and the durations from h2load's
per-request log.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")


def available() -> bool:
    return shutil.which("h2load") is not None


def grpc_frame(message: bytes) -> bytes:
    """One uncompressed gRPC message: flag byte 0, 4-byte big-endian length, the serialised message."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def run(target: str, method: str, message: bytes, clients: int, seconds: float, nice: int) -> list[float]:
    """``clients`` connections, one call in flight on each, calling ``method`` back to back for ``seconds``;
    the durations (ms) of the calls that completed, in order of completion. Calls still in flight when the time
    is up are cancelled by h2load and not returned (the service counts them as cancelled).

    Raises ``RuntimeError`` when h2load is missing or fails."""
    if not available():
        raise RuntimeError("h2load is not installed (Debian: apt-get install nghttp2-client)")
    with tempfile.TemporaryDirectory() as tmp:
        body, log = Path(tmp) / "body.grpc", Path(tmp) / "calls.tsv"
        body.write_bytes(grpc_frame(message))
        cmd = ["nice", "-n", str(nice), "h2load", "-D", f"{seconds:g}", "-c", str(clients), "-m", "1", "-t", "1"]
        for header in GRPC_HEADERS:
            cmd += ["-H", header]
        cmd += ["-d", str(body), "--log-file", str(log), f"http://{target}{method}"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"h2load failed ({done.returncode}): {done.stderr[-500:]}")
        return [int(row.split("\t")[2]) / 1000 for row in log.read_text().splitlines() if row.strip()]


def split(durations: list[float], ok: int) -> tuple[list[float], list[float]]:
    """(ok, the rest) when ``ok`` of the calls succeeded: the ``ok`` slowest are taken as the successes.

    Right when every success is slower than every refusal, as expected under overload with a small queue: a
    success waits for its windows to be batched and run (at least one model call), a refusal is answered at
    admission. The evidence is the gap at the cut, which the counts place independently of the durations: a wide
    gap between the slowest refusal and the fastest success (``gap``) says the two do not overlap; durations
    dense across the cut would say they do, and then the refusals' tail is uncertain by that much."""
    ordered = sorted(durations)
    cut = max(0, len(ordered) - ok)
    return ordered[cut:], ordered[:cut]


def requests_total(url: str, protocol: str) -> dict[str, float]:
    """The service's ``motionlift_requests_total`` for ``protocol``, by outcome, from ``url``/metrics (read with
    prometheus_client's own text parser)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "motionlift_requests_total" and sample.labels.get("protocol") == protocol
    }


def gap(ok_ms: list[float], refused_ms: list[float]) -> tuple[float, float] | None:
    """(slowest refusal, fastest success) in ms, the two sides of ``split``'s cut; None if either is empty."""
    return (max(refused_ms), min(ok_ms)) if ok_ms and refused_ms else None
