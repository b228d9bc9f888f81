"""What benchmarks read from /proc (service/bench/procs.py): a process's CPU seconds and its children."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from service.bench.procs import children, cpu_s


def test_cpu_seconds_grow_with_work_and_children_are_found() -> None:
    before = cpu_s(os.getpid())
    t0 = time.process_time()
    while time.process_time() - t0 < 0.2:
        pass
    assert cpu_s(os.getpid()) - before >= 0.1
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in children(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert child.pid not in children(os.getpid())
