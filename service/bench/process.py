"""Child processes started by benchmarks and tests (a MotionLift server, a local tritonserver): free ports and
waiting until one answers its readiness URL."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` right now (another process may still take it: good enough for tests)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(
    proc: subprocess.Popen[bytes], url: str, seconds: float, *, why_exited: Callable[[], str] = lambda: ""
) -> None:
    """Poll ``url`` until it answers 200. Raises RuntimeError if ``proc`` exits first (with ``why_exited()``,
    e.g. a log tail) or after ``seconds``. Refused connections and non-200 answers mean "not yet"."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the process exited with code {proc.returncode}{why_exited()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:  # refused while starting; HTTPError (an OSError) while not ready
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready within {seconds:g} s{why_exited()}")
