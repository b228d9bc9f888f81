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


def test_a_small_model_gets_one_single_threaded_instance_per_model_cpu() -> None:
    small, large = cpus.SMALL_PARAMS, cpus.SMALL_PARAMS + 1
    assert [cpus.layout(n, 280_199) for n in (1, 2, 4, 16)] == [(1, 1), (1, 1), (3, 1), (8, 1)]  # at most 8
    assert cpus.layout(4, small) == (3, 1)
    assert [cpus.layout(n, large) for n in (1, 2, 4, 16)] == [(1, 1), (1, 1), (1, 3), (1, 15)]
    assert cpus.layout(4, None) == (1, 3)  # unknown size: one instance, as before


def test_given_instances_or_threads_are_kept_and_threads_split_the_model_cpus() -> None:
    assert cpus.layout(4, 280_199, instances=1) == (1, 3)
    assert cpus.layout(4, 42_466_317, instances=2) == (2, 1)  # 3 model CPUs over 2 instances
    assert cpus.layout(9, 42_466_317, instances=2) == (2, 4)
    assert cpus.layout(2, 280_199, instances=2) == (2, 1)
    assert cpus.layout(4, 280_199, threads=2) == (1, 2)  # several threads asked for: one instance of them
    assert cpus.layout(4, 280_199, threads=1) == (3, 1)
    assert cpus.layout(4, 280_199, instances=5, threads=3) == (5, 3)


def test_instances_own_the_last_cpus_and_the_gateway_keeps_the_rest() -> None:
    assert cpus.placement([0, 1], instances=1, threads=1, allowed=None) == cpus.Placement((0,), ((1,),))
    assert cpus.placement([3, 0, 2, 1], instances=1, threads=3, allowed=None) == cpus.Placement((0,), ((1, 2, 3),))
    assert cpus.placement(range(8), instances=3, threads=2, allowed=8.0) == cpus.Placement(
        (0, 1), ((2, 3), (4, 5), (6, 7))
    )


def test_no_placement_when_the_gateway_would_have_no_cpu_or_a_quota_shares_them() -> None:
    assert cpus.placement([0], instances=1, threads=1, allowed=None) is None  # one CPU: nothing to keep apart
    assert cpus.placement([0, 1], instances=2, threads=1, allowed=None) is None  # the gateway would have none
    assert cpus.placement([0, 1, 2, 3], instances=1, threads=4, allowed=None) is None
    assert cpus.placement([0, 1, 2, 3], instances=1, threads=1, allowed=2.0) is None  # 2 CPUs of time over 4


def test_the_current_placement_reads_this_process_mask_and_quota(tmp_path: Path) -> None:
    mask = sorted(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    expected = cpus.placement(mask, 1, cpus.default_threads(len(mask)), None)
    assert cpus.current(instances=1, threads=0, cpu_max=cpu_max) == expected
    cpu_max.write_text("50000 100000\n")
    assert cpus.current(instances=1, threads=0, cpu_max=cpu_max) is None
