"""How many CPUs this process may really use, and the model's default intra-op threads from that.

``os.cpu_count()`` is the host's count. A container or a ``taskset`` sees fewer: the affinity mask limits which
CPUs the threads may run on, and a cgroup CPU quota (``cpu.max`` in cgroup v2: ``quota period``, e.g. ``200000
100000`` = 2 CPUs) limits how much time they get. More threads than that only queue behind each other, and
OpenMP's barriers make a descheduled thread stall its siblings.

The default leaves one CPU to the gateway (the event loop that parses, admits and answers, and gRPC's threads)
and gives the others to the model (``layout``): a small model as one single-threaded instance per CPU, a large one
as one instance with a thread per CPU. Small models scale poorly across the threads of one forward (their
operators are too short to share), and one-thread processes need no barrier. Measured on the 2-core AVX2 VM, raw
model, windows/s of 1 process x 2 threads against 2 processes x 1 thread side by side (27-frame windows, one run,
``/tmp`` script): default model (280 k parameters) 41 vs 208 at batch 1, 99 vs 178 at batch 8; small (2.4 M)
15 vs 40 and 29 vs 44; lite (16 M) 4.9 vs 6.5 and 6.0 vs 4.8; full (42 M) 2.7 vs 3.3 and 3.1 vs 3.3 (batch 4). Small
models gain 1.5-5 x from processes; large ones lose or gain within the VM's drift, and each process costs its own
memory, hence ``SMALL_PARAMS`` between the two. On 2 CPUs both rules give one instance of one thread.

Why one CPU for the gateway, measured on this project's 2-core machine (default model, 81-frame requests with flip,
a 16-window queue, ``motionlift bench overload``), model in its own process:

| threads | saturated (4 clients) | 10x overload (40 clients) | overload / saturated |
| --- | --- | --- | --- |
| 2 | 16.2 requests/s | 10.3 requests/s | 0.63 x |
| 1 | 12.4 requests/s | 12.9 requests/s | 1.04 x |

Two threads win by 30% on a quiet machine at saturation and lose it all, and more, as soon as anything else wants
a core (the loop under load, a body reader, another process). ``--threads`` overrides. Two one-thread processes
(``--instances 2``, the gateway's CPU shared) serve 1.5 x more at saturation and hold one flipped 30 fps stream
more, but the gateway's refusals then take model time: 0.71 x the saturated goodput at 10x gRPC overload
(README, "Model processes and threads"), under issue 12's 0.9 x; hence a CPU kept for the gateway by default.

**Placement** (``--pin-cpus``, on by default): leaving a CPU to the gateway is a count, and the scheduler does not
keep to it. At 10x overload over gRPC the gateway's loop and grpcio's threads want about a core between them, in
bursts that spill onto the model's CPU: the model process waited runnable 14% of the time (``/proc/<pid>/task/*/
schedstat``; 0.3% at the saturating load) and answered 0.80-0.88 x the saturated goodput. With each model instance
on CPUs of its own and the gateway's threads on the rest (``placement``), the wait fell to 8-9%, the remainder
from processes outside the service (the benchmark's own probe, 9% of a CPU). The model is pinned too, not only
the gateway: the scheduler wakes it on the CPU of the thread that hands it a batch, and with the gateway alone
pinned goodput fell to 0.37 x in one run. The cost: beside a foreign busy process the model cannot move off its
CPU (one stream of ``bench stream --hog 1`` lost 1 frame in 300 pinned, none unpinned); ``--pin-cpus off``. Like
Kubernetes' static CPU manager policy, but for the processes inside one container.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def quota(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` line (``"max 100000"``: no limit -> None)."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        limit, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return limit / period if limit > 0 and period > 0 else None


def usable(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may use: its affinity mask, capped by its cgroup's quota (rounded up), at least 1."""
    count = len(os.sched_getaffinity(0))
    try:
        allowed = quota(cpu_max.read_text())
    except OSError:  # no cgroup v2 here
        allowed = None
    if allowed is not None:
        count = min(count, math.ceil(allowed))
    return max(1, count)


def default_threads(cpus: int) -> int:
    """Intra-op threads for one model instance when ``--threads`` is 0: all usable CPUs but one."""
    return max(1, cpus - 1)


SMALL_PARAMS = 4_000_000  # at or under: one single-threaded instance per model CPU (``layout``)
MAX_AUTO_INSTANCES = 8  # each instance is a process with its own torch (~300 MiB resident for the default model)


def layout(cpus: int, params: int | None, instances: int = 0, threads: int = 0) -> tuple[int, int]:
    """``(instances, threads)`` for ``cpus`` usable CPUs and a model of ``params`` parameters (``None``: unknown);
    a non-zero ``instances`` or ``threads`` is kept as given. One CPU is left to the gateway; the others are the
    model's. A small model (``SMALL_PARAMS`` or fewer parameters) gets one single-threaded instance per model CPU
    (at most ``MAX_AUTO_INSTANCES``), any other model one instance; threads default to the model CPUs divided
    among the instances, at least 1, so that instances x threads never exceeds them when it need not."""
    model_cpus = default_threads(cpus)
    if instances == 0:
        small = params is not None and params <= SMALL_PARAMS
        instances = min(model_cpus, MAX_AUTO_INSTANCES) if small and threads in (0, 1) else 1
    if threads == 0:
        threads = max(1, model_cpus // instances)
    return instances, threads


@dataclass(frozen=True)
class Placement:
    """Which CPUs the gateway's threads keep and which each model instance owns (disjoint, ``threads`` each)."""

    gateway: tuple[int, ...]
    instances: tuple[tuple[int, ...], ...]


def placement(mask: Sequence[int], instances: int, threads: int, allowed: float | None) -> Placement | None:
    """The instances on the last ``instances x threads`` CPUs of ``mask`` (``threads`` each), the gateway on the rest.

    ``None`` (no pinning: the scheduler shares every CPU) when that leaves the gateway no CPU, or when a cgroup quota
    (``allowed`` CPUs) is below the mask's size: the CPUs are then shared in time, and owning some would only idle
    the others."""
    cpus = sorted(mask)
    needed = instances * threads
    if needed < 1 or needed >= len(cpus) or (allowed is not None and allowed < len(cpus)):
        return None
    owned = cpus[len(cpus) - needed :]
    return Placement(
        gateway=tuple(cpus[: len(cpus) - needed]),
        instances=tuple(tuple(owned[i * threads : (i + 1) * threads]) for i in range(instances)),
    )


def current(instances: int, threads: int, cpu_max: Path = CGROUP_CPU_MAX) -> Placement | None:
    """``placement`` for this process's affinity mask and cgroup quota (``threads`` 0: ``default_threads``)."""
    try:
        allowed = quota(cpu_max.read_text())
    except OSError:
        allowed = None
    mask = sorted(os.sched_getaffinity(0))
    return placement(mask, instances, threads or default_threads(usable(cpu_max)), allowed)


def pin_process(cpus: Sequence[int]) -> None:
    """Every thread of this process on ``cpus`` (threads made later inherit it from the thread that makes them)."""
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task), cpus)
