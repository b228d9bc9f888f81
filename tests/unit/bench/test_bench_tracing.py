"""`motionlift bench tracing` runs its three modes through the real app and prints one row each (no timing is
asserted: the figures are the benchmark's, on whatever machine runs it)."""

from __future__ import annotations

import re

from service.bench.tracing import run


def test_the_table_has_a_row_per_mode_against_off() -> None:
    out = run(frames=27, requests=3, rounds=2)
    lines = out.splitlines()
    assert lines[0].startswith("POST /lift, 27 frames (one window), echo model, 3 requests x 2 rounds per mode")
    assert lines[1].split() == ["tracing", "CPU", "us/request", "vs", "off", "(us)", "vs", "off", "wall", "us/request"]
    rows = {line.rsplit(None, 5)[0].strip(): line for line in lines[3:]}
    assert list(rows) == ["off", "on, not sampled", "on"]
    assert re.search(r"\s\+0\s+\+0\.0 %\s", rows["off"])
