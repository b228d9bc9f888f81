"""CPUs this process may use (affinity and cgroup quota) and the model's default threads from them."""

from __future__ import annotations

import os
from pathlib import Path

from service.backends.torchscript import cpus


def test_a_cgroup_quota_line_gives_cpus() -> None:
    assert cpus.quota("200000 100000\n") == 2.0
    assert cpus.quota("150000 100000") == 1.5
    assert cpus.quota("max 100000") is None
    assert cpus.quota("garbage") is None
    assert cpus.quota("0 100000") is None


def test_usable_cpus_are_the_affinity_mask_capped_by_the_quota(tmp_path: Path) -> None:
    mask = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert cpus.usable(cpu_max) == mask
    cpu_max.write_text("50000 100000\n")  # half a CPU: one thread
    assert cpus.usable(cpu_max) == 1
    cpu_max.write_text(f"{100000 * (mask + 4)} 100000\n")  # a quota above the mask: the mask
    assert cpus.usable(cpu_max) == mask
    assert cpus.usable(tmp_path / "absent") == mask


def test_the_default_leaves_one_cpu_to_the_gateway() -> None:
    assert [cpus.default_threads(n) for n in (1, 2, 4, 16)] == [1, 1, 3, 15]
