"""The soak benchmark's report (``service/bench/soak.py``): the table per interval, the table per kind, the leak
checks and the verdict line."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from service.bench.soak_calls import Frames
from service.bench.soak_clients import CANCEL_P, DISCONNECT_P, EXPECTED, INVALID_P, KINDS, Plan, Tally, WorkerReport
from service.bench.table import render

COUNTS = ["sent", "answered", "errors", "cancelled", "disconnected", "unanswered"]
INTERVAL_HEADERS = ["interval", "until s", *COUNTS, "in flight", "RSS MiB", "open files", "threads"]
KIND_HEADERS = ["kind", "rate/s", *COUNTS]


@dataclass(frozen=True)
class Sample:
    """The server process at one moment (``/proc/<pid>``)."""

    rss_kib: int
    open_files: int
    threads: int


@dataclass(frozen=True)
class Soak:
    """One soak run: the plan, what each load process reported (``final``: the kinds whose process ended and
    reported; the others' calls count as unanswered), the server before the load, at each interval's end (with
    the calls in flight then) and after the load (``settled_s``: when its open files were back to the baseline,
    None if never), and its /metrics then."""

    plan: Plan
    rates: dict[str, float]
    reports: dict[str, WorkerReport]
    final: list[str]
    before: Sample
    samples: list[Sample]
    in_flight: list[int]  # calls in flight at each sample
    after: Sample
    settled_s: float | None
    state: dict[str, float]

    def interval(self, i: int) -> Tally:
        total = Tally()
        for r in self.reports.values():
            total.add(r.intervals.get(i, Tally()))
        return total

    def kind(self, kind: str) -> Tally:
        total = Tally()
        for tally in self.reports[kind].intervals.values():
            total.add(tally)
        return total

    def outcomes(self) -> Counter[str]:
        return sum((r.outcomes for r in self.reports.values()), Counter())

    def frames(self) -> Frames:
        frames = [r.frames for r in self.reports.values()]
        return Frames(*(sum(getattr(f, n) for f in frames) for n in ("sent", "answered", "skipped")))

    def rss_growth_pct(self) -> float | None:
        """RSS at the last interval's end over the first's (the warm-up), in percent; None with one interval."""
        if len(self.samples) < 2:
            return None
        first, last = self.samples[0].rss_kib, self.samples[-1].rss_kib
        return 100.0 * (last - first) / first


def _counts(t: Tally) -> list[object]:
    return [t.sent, t.answered, t.errors, t.cancelled, t.disconnected, t.unanswered]


def _server(s: Sample) -> list[object]:
    return [s.rss_kib / 1024, s.open_files, s.threads]


def interval_table(soak: Soak) -> str:
    """One row per interval (calls by the interval they were sent in; the server at its end), between the
    server before the load and after it."""
    every, seconds = soak.plan.every, soak.plan.seconds
    rows: list[list[object]] = [["before", 0.0, *["-"] * len(COUNTS), 0, *_server(soak.before)]]
    for i, (s, busy) in enumerate(zip(soak.samples, soak.in_flight, strict=True)):
        rows.append([i + 1, min((i + 1) * every, seconds), *_counts(soak.interval(i)), busy, *_server(s)])
    rows.append(["after", "-", *["-"] * len(COUNTS), "-", *_server(soak.after)])
    return render(INTERVAL_HEADERS, rows)


def kind_table(soak: Soak) -> str:
    """One row per kind of call, and the total."""
    kinds = [k for k in KINDS if k in soak.reports]
    total = Tally()
    rows: list[list[object]] = []
    for k in kinds:
        total.add(soak.kind(k))
        rows.append([k, f"{soak.rates[k]:g}", *_counts(soak.kind(k))])
    rows.append(["total", "-", *_counts(total)])
    return render(KIND_HEADERS, rows)


def _check(ok: bool, good: str, bad: str) -> tuple[bool, str]:
    return ok, good if ok else bad


def checks(soak: Soak, *, rss_limit_pct: float, settle_s: float) -> list[tuple[bool, str]]:
    """The verdict's checks, each (passed, what it found)."""
    total = Tally()
    for k in soak.reports:
        total.add(soak.kind(k))
    silent = ", ".join(k for k in soak.reports if k not in soak.final)
    growth = soak.rss_growth_pct()
    unexpected = {k: v for k, v in soak.outcomes().items() if k not in EXPECTED}
    lost = soak.frames().unaccounted
    streams, queued = soak.state.get("motionlift_streams_active", -1), soak.state.get("motionlift_queue_depth", -1)
    before, after = soak.before.open_files, soak.after.open_files
    return [
        _check(
            total.unanswered == 0 and not silent,
            "every call answered (sent = answered + cancelled + disconnected)",
            f"{total.unanswered} calls unanswered" + (f" (no final report from: {silent})" if silent else ""),
        ),
        _check(
            growth is None or growth < rss_limit_pct,
            f"RSS {growth:+.1f}% after warm-up (limit {rss_limit_pct:g}%)"
            if growth is not None
            else "RSS growth after warm-up not measured (one interval)",
            f"RSS {growth:+.1f}% after warm-up (limit {rss_limit_pct:g}%)",
        ),
        _check(
            soak.settled_s is not None,
            f"open files back to the baseline ({before}) {soak.settled_s or 0:.1f} s after the load",
            f"open files {after}, not back to the baseline ({before}) within {settle_s:g} s after the load",
        ),
        _check(
            streams == 0 and queued == 0,
            "no stream open and no window queued on the server after the load",
            f"after the load the server has {streams:g} streams open and {queued:g} windows queued",
        ),
        _check(not unexpected, "no unexpected outcome", f"unexpected outcomes: {_outcomes(unexpected)}"),
        _check(
            lost == 0,
            "every frame of the streams that ended normally answered or reported skipped",
            f"{lost} stream frames neither answered nor reported skipped",
        ),
    ]


def _outcomes(counts: Counter[str] | dict[str, int]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def report(soak: Soak, *, model: Path, rss_limit_pct: float, settle_s: float) -> tuple[str, bool]:
    """The printed report, and whether the verdict passed."""
    plan = soak.plan
    rates = ", ".join(f"{k} {v:g}" for k, v in soak.rates.items())
    header = (
        f"model {model}, {plan.seconds / 60:g} min, every {plan.every:g} s, seed {plan.seed}, {os.cpu_count()} "
        f"cores; calls/s: {rates} (stream = new LiftStreams/s, 30 fps, 1-6 s); of each kind's calls "
        f"{CANCEL_P:.0%} cancelled and {DISCONNECT_P:.0%} disconnected at random (counted when the answer had not "
        f"come yet), {INVALID_P:.0%} of lifts invalid on purpose"
    )
    found = checks(soak, rss_limit_pct=rss_limit_pct, settle_s=settle_s)
    passed = all(ok for ok, _ in found)
    frames = soak.frames()
    lines = [
        header,
        "",
        "calls by the interval they were sent in (errors: answered with a typed error); at its end, the calls in "
        "flight (sent in any interval) and the server's memory, open files and threads (the service keeps "
        "freed heap memory mapped, so its RSS follows the busiest moment so far more than the present):",
        interval_table(soak),
        "",
        kind_table(soak),
        "",
        *(f"{k}: {_outcomes(r.outcomes)}" for k, r in soak.reports.items()),
        f"streams that ended normally: {frames.sent:,} frames sent, {frames.answered:,} answered, "
        f"{frames.skipped:,} skipped (latest frame wins), {frames.unaccounted:,} unaccounted",
        f"threads: {soak.before.threads} before the load, {soak.after.threads} after it",
        "",
        "verdict: "
        + (
            "PASS: " + "; ".join(text for _, text in found)
            if passed
            else "FAIL: " + "; ".join(t for ok, t in found if not ok)
        ),
    ]
    return "\n".join(lines), passed
