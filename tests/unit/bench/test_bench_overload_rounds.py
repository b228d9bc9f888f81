"""``bench overload`` alternates its two loads (A B B A) and pools each load's points before taking the ratio."""

from __future__ import annotations

import argparse

import pytest

from service.bench.overload import Point, _command, alternating


def test_loads_alternate_so_a_steady_drift_cancels() -> None:
    assert alternating(4, 40, 1) == [4, 40]
    assert alternating(4, 40, 2) == [4, 40, 40, 4]
    assert alternating(4, 40, 3) == [4, 40, 40, 4, 4, 40]


def test_pooled_points_add_calls_and_seconds() -> None:
    a = Point("grpc", 4, 10.0, [300.0, 310.0], [30.0], 1, [4.0], "h2load")
    b = Point("grpc", 4, 10.0, [320.0], [], 0, [5.0, 6.0], "h2load")
    pooled = a.pooled(b)
    assert (pooled.seconds, pooled.ok_ms, pooled.refused_ms, pooled.other) == (20.0, [300.0, 310.0, 320.0], [30.0], 1)
    assert pooled.health_ms == [4.0, 5.0, 6.0] and pooled.generator == "h2load"
    assert pooled.goodput(81) == 3 * 81 / 20.0


def test_no_rounds_is_refused_before_any_server_starts(capsys: pytest.CaptureFixture[str]) -> None:
    assert _command(argparse.Namespace(rounds=0)) == 2
    assert capsys.readouterr().err == "motionlift bench overload: --rounds must be at least 1, got 0\n"
