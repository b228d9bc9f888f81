"""The streaming benchmark's measurement loop, briefly, against the session's real service (tiny model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.bench.limit import BATCHES, Hog, compute_limit, layouts
from service.bench.stream import Mode, drive, parse_modes, report, sweep
from tests.conftest import Served
from tests.servers import until

pytestmark = pytest.mark.slow


def test_parse_modes_and_budgets() -> None:
    assert parse_modes("causal,lookahead:8,lookahead:8:4") == [Mode(), Mode(8, 1), Mode(8, 4)]
    assert [m.budget_ms(100, 30) for m in parse_modes("causal,lookahead:3,lookahead:3:4")] == [100, 200, 300]
    with pytest.raises(ValueError, match="unknown mode"):
        parse_modes("causal:2")


@pytest.mark.parametrize("mode", [Mode(), Mode(2, 2)])
async def test_one_paced_stream_accounts_for_every_frame(served: Served, mode: Mode) -> None:
    row = await drive(served.grpc_target, mode, 1, 1.0, window=4)
    assert 28 <= row.sent <= 31  # 30 fps for 1 s, after the lead-in
    assert row.errors == 0 and len(row.latencies_ms) == row.answered > 0
    assert row.percentile(50) > 0 and len(row.send_lag_ms) == row.sent
    text = report([row], [mode], budget_ms=1e9, fps=30, header="h")
    assert f"{mode.name}: largest N sustained = {1 if row.skipped == 0 else 0} streams at 30 fps" in text


def test_the_sweep_stops_at_the_first_point_that_fails(served: Served) -> None:
    rows = sweep(served.grpc_target, [Mode()], [1, 2], seconds=0.3, budget_ms=0.0, fps=30, window=4, flip=False,
                 warmup_s=0.1)  # fmt: skip
    assert [r.streams for r in rows] == [1]  # no answer comes in 0 ms


def test_the_compute_limit_is_the_best_rate_over_batches(tiny_model: Path) -> None:
    limit = compute_limit(tiny_model, window=4, fps=30, flip=True, cpus=2, seconds=0.05)
    assert limit.best_batch in BATCHES and (limit.window, limit.per_stream) == (4, 60)
    assert [(p, t) for p, t, _ in limit.layouts] == [(1, 2), (2, 1)]
    assert limit.windows_per_s == max(rate for _, _, rate in limit.layouts) > 0
    assert (limit.processes, limit.threads, limit.windows_per_s) in limit.layouts
    assert limit.streams == pytest.approx(limit.windows_per_s / 60)


def test_layouts_of_the_cpus() -> None:
    assert layouts(1) == [(1, 1)]
    assert layouts(2) == [(1, 2), (2, 1)]
    assert layouts(8) == [(1, 8), (8, 1)]


def test_a_failing_model_process_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pt"
    failed = f"compute limit: a model process failed: FileNotFoundError: model file not found: {missing}"
    with pytest.raises(RuntimeError, match=re.escape(failed)):
        compute_limit(missing, window=4, fps=30, flip=False, cpus=2, seconds=0.05)


def test_a_hog_spins_until_stopped() -> None:
    hog = Hog()
    hog.start()
    process = hog._process
    assert process is not None and process.is_alive()
    pid = process.pid
    assert pid is not None
    until(lambda: _cpu_ticks(pid) > 0, "the hog to use the CPU")
    hog.stop()
    assert not process.is_alive()


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime
