"""What benchmarks read of a server's processes from ``/proc``: CPU time, resident memory, and the processes
below it (the model processes, the body readers under their forkserver). Linux only, as the service's targets."""

from __future__ import annotations

import os
from pathlib import Path

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) * TICK_S


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB; 0 when it is gone (or a zombie)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _by_parent() -> dict[int, list[int]]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(_stat(int(stat.parent.name))[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        parents.setdefault(parent, []).append(int(stat.parent.name))
    return parents


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (started from any of its threads), alive now."""
    return sorted(_by_parent().get(pid, []))


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children...), alive now."""
    parents = _by_parent()
    found, todo = [], list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(parents.get(child, []))
    return sorted(found)
