"""glibc malloc settings: freed activation-sized blocks stay mapped instead of being page-faulted in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

_PROBE = """
import sys
from service.backends.torchscript.heap import keep_freed_memory
tuned = sys.argv[1] == "tuned"
if tuned:
    assert keep_freed_memory()
import numpy as np

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

before = rss_mb()
block = np.ones(200 * 2**20 // 8)  # 200 MB, above glibc's default mmap threshold
del block
print(round(rss_mb() - before))
"""


@pytest.mark.slow
@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_large_blocks_stay_mapped_only_when_tuned() -> None:
    def kept_mb(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout)

    assert kept_mb("default") < 20  # munmap'ed on free: the next batch page-faults it back in
    assert kept_mb("tuned") >= 190  # kept for reuse
