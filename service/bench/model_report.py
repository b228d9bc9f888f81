"""How ``motionlift bench model`` prints and saves a ``Report``: the peak lines, the table, the notes, a CSV."""

from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path

from service.bench.model import ModelRow, Report
from service.bench.peak import MAX_GEMM_CALL_SECONDS, Peak, shape_text
from service.bench.table import render

HEADERS = [
    "config", "precision", "window", "batch", "ms/call", "frames/s", "GFLOP/s", "% peak", "% local peak", "vs batch 1",
]  # fmt: skip


def _peak_line(precision: str, peaks: tuple[Peak, Peak], threads: int) -> str:
    before, after = peaks
    line = (
        f"{precision} matmul peak {max(before.gflops, after.gflops):,.1f} GFLOP/s ({threads} threads) = max of "
        f"before rows {before.gflops:,.1f} (at {shape_text(before.shape)}), "
        f"after rows {after.gflops:,.1f} (at {shape_text(after.shape)})"
    )
    skipped = sorted({*before.skipped, *after.skipped})
    if skipped:
        line += f"; not run (one call > {MAX_GEMM_CALL_SECONDS:g} s): {', '.join(map(shape_text, skipped))}"
    return line


def _table_row(report: Report, r: ModelRow) -> list[object]:
    ratio = report.vs_batch1(r)
    pct = 100 * r.gflops / report.peak_gflops(r.precision)
    local = "n/a" if r.local_peak is None else f"{100 * r.gflops / r.local_peak:.1f}"
    vs_batch1 = "n/a" if ratio is None else f"{ratio:.2f}"
    return [r.config, r.precision, r.window, r.batch, r.ms_per_call, r.frames_per_s, r.gflops, pct, local, vs_batch1]


def render_report(report: Report) -> str:
    """The peak lines (one per precision), the table (columns ``HEADERS``) and the notes, as printed."""
    lines = [_peak_line(p, peaks, report.threads) for p, peaks in report.peaks.items()]
    lines.append("GEMM shapes are MxKxN of addmm(bias[N], a[M,K], w[N,K].t()), as nn.Linear runs them")
    lines.append(render(HEADERS, [_table_row(report, r) for r in report.rows]))
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def write_csv(report: Report, path: Path) -> None:
    """The rows as CSV (``ModelRow`` fields plus ``peak_gflops``, ``pct_peak`` and ``vs_batch1``, empty when
    there is no batch-1 row); parent directories are created. ``OSError`` on I/O failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*ModelRow.__dataclass_fields__, "peak_gflops", "pct_peak", "vs_batch1"])
        for r in report.rows:
            peak = report.peak_gflops(r.precision)
            ratio = report.vs_batch1(r)
            values = asdict(r).values()
            writer.writerow([*values, f"{peak:.3f}", f"{100 * r.gflops / peak:.3f}", "" if ratio is None else ratio])
