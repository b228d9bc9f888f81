"""`motionlift bench model` (service/bench/model.py, service/bench/peak.py): rows, FLOP counts, peaks, CLI.

Everything runs on the tiny config, short windows and tiny GEMM shapes with 0.05 s per measurement: these
tests check the bookkeeping, not the machine's speed.
"""

import csv
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from service.bench import peak
from service.bench.model import flops_per_window, measure, resolve_bench_config, run
from service.bench.model_report import HEADERS, render_report
from service.bench.peak import matmul_peak, parse_shapes, timed
from service.cli import main
from service.model.configs import CONFIGS
from tests.data import REPO

SECONDS = 0.05
SMALL_GEMMS = [(64, 64, 64), (128, 128, 128)]
ROW_KEYS = {
    "config", "precision", "scripted", "window", "batch", "ms_per_call", "frames_per_s", "gflops", "local_peak",
}  # fmt: skip


def expected_flops(hp: dict[str, Any], window: int) -> int:
    """Matmul FLOPs of one DSTformer window, from the architecture (batch 1).

    A Linear in -> out over n tokens is 2·n·in·out; attention over sequences of length L with head size d is
    q kᵀ plus (weights) v, 2·L²·d each, so 4·L²·d per head and sequence. Spatial attention: one sequence of J
    joints per frame (T of them); temporal: one sequence of T frames per joint (J of them). Each of the
    2·depth blocks has one of each attention (qkv c -> 3c, proj c -> c) and two MLPs (c -> hidden -> c); the
    stream fusion is a Linear 2c -> 2 per depth; then pre_logits c -> dim_rep and head dim_rep -> dim_out.
    """
    t = window
    j: int = hp["num_joints"]
    n = t * j
    c: int = hp["dim_feat"]
    heads: int = hp["num_heads"]
    depth: int = hp["depth"]
    hidden, d = int(c * hp["mlp_ratio"]), c // heads

    def linear(fan_in: int, fan_out: int) -> int:
        return 2 * n * fan_in * fan_out

    attention_linears = linear(c, 3 * c) + linear(c, c)
    mlp = linear(c, hidden) + linear(hidden, c)
    spatial = 4 * j * j * d * heads * t
    temporal = 4 * t * t * d * heads * j
    block = 2 * attention_linears + 2 * mlp + spatial + temporal
    fuse = depth * linear(2 * c, 2) if hp["att_fuse"] else 0
    return (
        linear(hp["dim_in"], c)
        + 2 * depth * block
        + fuse
        + linear(c, hp["dim_rep"])
        + linear(hp["dim_rep"], hp["dim_out"])
    )


@pytest.mark.slow
@pytest.mark.parametrize("window", [27, 243])  # 243 > FUSED_MIN_LENGTH: the fused kernel's work counts too
def test_flops_of_tiny_follow_the_architecture(window: int) -> None:
    assert flops_per_window(CONFIGS["tiny"], window) == expected_flops(dict(CONFIGS["tiny"]), window)


@pytest.fixture
def short_tiny(tmp_path: Path) -> str:
    """A hyperparameter file: tiny with maxlen 9."""
    path = tmp_path / "short.json"
    path.write_text(json.dumps({**CONFIGS["tiny"], "maxlen": 9}), encoding="utf-8")
    return str(path)


@pytest.mark.slow
def test_run_rows_peaks_and_maxlen_skip(short_tiny: str) -> None:
    report = run(["tiny", short_tiny], [9, 27], [1, 2], seconds=SECONDS, shapes=SMALL_GEMMS)

    assert [(r.config, r.window, r.batch) for r in report.rows] == [
        ("tiny", 9, 1),
        ("tiny", 9, 2),
        ("tiny", 27, 1),
        ("tiny", 27, 2),
        ("short", 9, 1),
        ("short", 9, 2),
    ]
    assert all(set(asdict(r)) == ROW_KEYS and r.precision == "fp32" and r.scripted for r in report.rows)
    assert any("short" in n and "27" in n and "maxlen 9" in n for n in report.notes), report.notes
    # The peak is measured before and after the rows; the reference is the larger.
    before, after = report.peaks["fp32"]
    assert before.shape in SMALL_GEMMS and after.shape in SMALL_GEMMS
    assert report.peak_gflops("fp32") == max(before.gflops, after.gflops) > 0
    # Each row also has the peak shape timed around it (a probe of the best shape only).
    assert all(r.local_peak is not None and r.local_peak > 0 for r in report.rows)
    by_key = {(r.config, r.window, r.batch): r for r in report.rows}
    flops = {w: flops_per_window(CONFIGS["tiny"], w) for w in (9, 27)}
    for r in report.rows:
        seconds_per_call = r.ms_per_call / 1000
        assert r.frames_per_s == pytest.approx(r.batch * r.window / seconds_per_call)
        assert r.gflops == pytest.approx(r.batch * flops[r.window] / seconds_per_call / 1e9)
        assert report.vs_batch1(r) == pytest.approx(r.frames_per_s / by_key[r.config, r.window, 1].frames_per_s)
    text = render_report(report)
    assert all(h in text for h in HEADERS) and "fp32 matmul peak" in text and "maxlen 9" in text


def test_default_is_the_trained_model_with_maxlen_27() -> None:
    name, hparams = resolve_bench_config("default")
    spec = json.loads((REPO / "service/model/weights/default.json").read_text())
    assert (name, hparams) == ("default", spec["hyperparams"])
    assert hparams["maxlen"] == 27


def test_bf16_rows() -> None:
    rows = measure("tiny", [3], [1], seconds=SECONDS, precision="bf16")
    assert [(r.config, r.precision, r.scripted, r.window, r.batch) for r in rows] == [("tiny", "bf16", True, 3, 1)]
    assert rows[0].gflops > 0


def test_official_rows_are_eager_fp32() -> None:
    rows = measure("tiny", [9], [1], seconds=SECONDS, official=True)
    assert [(r.config, r.precision, r.scripted) for r in rows] == [("tiny-official", "fp32", False)]
    with pytest.raises(ValueError, match="fp32 only"):
        measure("tiny", [9], [1], seconds=SECONDS, precision="bf16", official=True)


def test_predicted_slow_rows_are_skipped_with_a_note() -> None:
    notes: list[str] = []
    # A hint of 1e-6 GFLOP/s predicts hours for the first row; the limit is 1 s.
    rows = measure("tiny", [9], [1], seconds=SECONDS, max_call_seconds=1.0, rate_hint=1e-6, notes=notes)
    assert rows == [] and len(notes) == 1 and "predicted" in notes[0]


def test_peak_skips_shapes_too_slow_for_one_call() -> None:
    peak = matmul_peak("fp32", seconds=SECONDS, shapes=[(64, 64, 64), (10**5, 10**5, 10**5)], max_call_seconds=1.0)
    assert peak.shape == (64, 64, 64) and peak.skipped == ((10**5, 10**5, 10**5),) and peak.gflops > 0


def test_timed_times_a_slow_call_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []

    def slow() -> None:
        calls.append(time.perf_counter())
        time.sleep(0.03)

    per_call = timed(slow, min_seconds=0.01, min_calls=5)
    assert len(calls) == 3 and per_call >= 0.03  # two warm-up calls, one timed call
    calls.clear()
    monkeypatch.setattr(peak, "LONG_CALL_SECONDS", 0.02)
    timed(slow, min_seconds=0.01, min_calls=5)
    assert len(calls) == 2  # a long first call: no second warm-up
    calls.clear()
    timed(lambda: calls.append(0.0), min_seconds=0.0, min_calls=3)
    assert len(calls) == 5  # two warm-up calls, then min_calls


def test_parse_shapes() -> None:
    assert parse_shapes("512x512x512, 4131x1024x512") == [(512, 512, 512), (4131, 1024, 512)]
    for bad in ("512x512", "0x1x1", "axbxc"):
        with pytest.raises(ValueError):
            parse_shapes(bad)


@pytest.mark.slow
def test_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rows.csv"
    argv = ["bench", "model", "--configs", "tiny", "--windows", "9", "--batches", "1,2", "--seconds", str(SECONDS)]
    argv += ["--peak-shapes", "64x64x64,128x128x128", "--official", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.lstrip().startswith("config"))
    assert header.split()[0] == "config" and all(h in header for h in HEADERS)
    assert "fp32 matmul peak" in text and "before rows" in text and "after rows" in text
    assert "tiny-official" in text
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    expected = [("tiny", "1"), ("tiny", "2"), ("tiny-official", "1"), ("tiny-official", "2")]
    assert [(r["config"], r["batch"]) for r in rows] == expected
    assert float(rows[0]["vs_batch1"]) == 1.0


@pytest.mark.parametrize(
    "flags", [["--configs", "nosuch"], ["--precisions", "fp8"], ["--windows", "0"], ["--peak-shapes", "1x2"]]
)
def test_cli_rejects_bad_arguments_before_timing(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "model", "--configs", "tiny", "--windows", "9", "--batches", "1", *flags]) == 2
    assert "motionlift bench model:" in capsys.readouterr().err
