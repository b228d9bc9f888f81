"""``motionlift bench soak`` through the real CLI, briefly, on the tiny model: the report's tables have their
columns, and every call sent is accounted for (answered, or cancelled / disconnected on purpose)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.bench.soak import parse_rates
from service.cli import main

INTERVAL_COLUMNS = ["interval", "until s", "sent", "answered", "errors", "cancelled", "disconnected", "unanswered",
                    "in flight", "RSS MiB", "open files", "threads"]  # fmt: skip
KIND_COLUMNS = ["kind", "rate/s", "sent", "answered", "errors", "cancelled", "disconnected", "unanswered"]


def _table(text: str, first: str) -> tuple[list[str], list[list[str]]]:
    """The table of ``service.bench.table.render`` whose header starts with ``first``: its header and rows."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() and line.split()[0] == first)
    assert set(lines[start + 1].replace(" ", "")) == {"-"}
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return re.split(r"\s{2,}", lines[start].strip()), rows


def _count(cell: str) -> int:
    return int(cell.replace(",", ""))


def test_rates_are_given_by_kind() -> None:
    assert parse_rates("") == {"rest": 2.0, "grpc": 2.0, "stream": 0.25}
    assert parse_rates("grpc=0, stream=1") == {"rest": 2.0, "grpc": 0.0, "stream": 1.0}
    for bad in ("udp=1", "rest", "rest=-1", "rest=nan", "rest=0,grpc=0,stream=0"):
        with pytest.raises(ValueError):
            parse_rates(bad)


def test_a_bad_rate_is_refused_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "soak", "--rate", "udp=1"]) == 2
    assert "KIND=RATE" in capsys.readouterr().err


@pytest.mark.slow
def test_a_short_soak_accounts_for_every_call(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    load = ["--minutes", "0.1", "--every", "3", "--seed", "1", "--rate", "rest=4,grpc=4,stream=1"]
    code = main(["bench", "soak", "--model", str(tiny_model), *load])
    out = capsys.readouterr().out

    header, rows = _table(out, "interval")
    assert header == INTERVAL_COLUMNS
    assert [r[0] for r in rows] == ["before", "1", "2", "after"]
    assert all(float(r[9].replace(",", "")) > 0 and int(r[10]) > 0 and int(r[11]) > 0 for r in rows)
    for row in rows[1:-1]:
        sent, answered, errors, cancelled, disconnected, unanswered = map(_count, row[2:8])
        assert sent == answered + cancelled + disconnected and unanswered == 0
        assert errors <= answered and _count(row[8]) >= 0

    header, kinds = _table(out, "kind")
    assert header == KIND_COLUMNS
    assert [k[0] for k in kinds] == ["rest", "grpc", "stream", "total"]
    totals = [sum(_count(k[i]) for k in kinds[:-1]) for i in range(2, 8)]
    assert totals == [_count(c) for c in kinds[-1][2:]]
    assert totals[0] == sum(_count(r[2]) for r in rows[1:-1]) > 0

    verdict = out.rstrip().splitlines()[-1]
    assert verdict.startswith("verdict: PASS: every call answered" if code == 0 else "verdict: FAIL: ")
