"""The soak's memory figure counts the server's processes too (the model and the body readers)."""

from __future__ import annotations

import os
import subprocess
import sys

from service.bench.procs import descendants
from service.bench.soak import sample
from tests.servers import until

SLEEPER = "import time; time.sleep(30)"
GRANDPARENT = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]); time.sleep(30)"


def test_descendants_and_their_memory_are_counted() -> None:
    child = subprocess.Popen([sys.executable, "-c", GRANDPARENT])
    try:
        until(lambda: len(descendants(child.pid)) == 1, "the grandchild to start")
        [grandchild] = descendants(child.pid)
        assert {child.pid, grandchild} <= set(descendants(os.getpid()))
        alone = sample(grandchild).rss_kib
        assert sample(child.pid).rss_kib > alone  # the child's own memory plus its child's
    finally:
        for pid in descendants(child.pid):
            os.kill(pid, 9)
        child.kill()
        child.wait()
