"""Refusals' audit lines: one by one up to ``per_s`` a second, the rest summed up per key, protocol and outcome."""

from __future__ import annotations

import asyncio
import logging

import pytest

from service.core.access import ANONYMOUS, Caller
from service.core.audit import Refusals

BOB = Caller("bob")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "motionlift.audit"]


def test_a_storm_is_logged_up_to_the_limit_then_summed_up_when_its_second_is_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="motionlift.audit")
    now = [100.2]
    refusals = Refusals(per_s=3, clock=lambda: now[0])
    for i in range(5):
        refusals.refused(ANONYMOUS, f"r{i}", "grpc", "overloaded")
    refusals.refused(BOB, "r5", "rest", "overloaded")
    refusals.refused(BOB, "r6", "rest", "unauthenticated")
    assert [line.split(" request=")[1].split(" ")[0] for line in lines(caplog)] == ["r0", "r1", "r2"]
    now[0] = 101.0  # the next second: its first refusal is logged after the last second's summary
    refusals.refused(BOB, "r7", "rest", "overloaded")
    assert lines(caplog)[3:] == [
        "audit refusals-not-logged key=- protocol=grpc outcome=overloaded count=2 seconds=1",
        "audit refusals-not-logged key=bob protocol=rest outcome=overloaded count=1 seconds=1",
        "audit refusals-not-logged key=bob protocol=rest outcome=unauthenticated count=1 seconds=1",
        "audit key=bob request=r7 protocol=rest frames=0 outcome=overloaded latency_ms=0.0",
    ]
    refusals.flush()  # nothing more was dropped: nothing more to say
    assert len(lines(caplog)) == 7


def test_on_a_loop_the_summary_comes_a_second_later_without_another_refusal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="motionlift.audit")

    async def storm() -> list[str]:
        refusals = Refusals(per_s=1, clock=lambda: 7.5)  # one second throughout: no boundary mid-storm
        for i in range(4):
            refusals.refused(ANONYMOUS, f"r{i}", "rest", "overloaded")
        await asyncio.sleep(1.2)
        return lines(caplog)

    logged = asyncio.run(storm())
    assert logged[1:] == ["audit refusals-not-logged key=- protocol=rest outcome=overloaded count=3 seconds=1"]


def test_nothing_is_counted_when_the_audit_logger_is_silenced(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="motionlift.audit")
    refusals = Refusals(per_s=0)
    refusals.refused(ANONYMOUS, "r0", "rest", "overloaded")
    caplog.set_level(logging.INFO, logger="motionlift.audit")  # turned on again: no summary of the silent time
    refusals.flush()
    assert lines(caplog) == []
