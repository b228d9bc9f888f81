"""How many CPUs this process may really use, and the model's default intra-op threads from that.

``os.cpu_count()`` is the host's count. A container or a ``taskset`` sees fewer: the affinity mask limits which
CPUs the threads may run on, and a cgroup CPU quota (``cpu.max`` in cgroup v2: ``quota period``, e.g. ``200000
100000`` = 2 CPUs) limits how much time they get. More threads than that only queue behind each other, and
OpenMP's barriers make a descheduled thread stall its siblings.

The default leaves one CPU to the gateway (the event loop that parses, admits and answers, and gRPC's threads):
``threads = usable - 1``, at least 1. Measured on this project's 2-core machine (default model, 81-frame
requests with flip, a 16-window queue, ``motionlift bench overload``), model in its own process:

| threads | saturated (4 clients) | 10x overload (40 clients) | overload / saturated |
| --- | --- | --- | --- |
| 2 | 16.2 requests/s | 10.3 requests/s | 0.63 x |
| 1 | 12.4 requests/s | 12.9 requests/s | 1.04 x |

Two threads win by 30% on a quiet machine at saturation and lose it all, and more, as soon as anything else wants
a core (the loop under load, a body reader, another process). ``--threads`` overrides.
"""

from __future__ import annotations

import math
import os
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
