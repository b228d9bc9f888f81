"""``motionlift plan`` (service/bench/plan.py): the work of a workload, the units it needs from the documented rates,
and the command's table and refusals."""

from __future__ import annotations

import math

import pytest

from service.bench.plan import CPU_GFLOPS_PER_CORE, GATEWAY_CORE_S_PER_MESSAGE, Workload, cpu_rate, make_plan
from service.cli import main


def test_cpu_rates_are_the_measured_ones_interpolated_on_log_width() -> None:
    assert [cpu_rate(w) for w in (64, 256, 512)] == [17.4, 50.7, 56.6]
    assert cpu_rate(128) == pytest.approx((17.4 + 50.7) / 2)  # halfway between 64 and 256 on log2
    assert cpu_rate(32) == 17.4 and cpu_rate(1024) == 56.6  # outside the measured widths: the nearest


def test_eight_causal_streams_of_the_default_model() -> None:
    work = Workload(streams=8, fps=30.0)
    plan = make_plan(work, flops_per_window=0.27e9, window=27, width=64, utilisation=0.7)
    assert work.windows_per_s(27) == 240  # one window per answered frame
    assert plan.model_frames_per_s == 240 * 2 * 27  # flip: two passes
    assert plan.tflops == pytest.approx(480 * 0.27e9 / 1e12)
    model_cores = 480 * 0.27 / (17.4 * 0.7)
    gateway_cores = 240 * GATEWAY_CORE_S_PER_MESSAGE / 0.7
    assert plan.cpu_cores == math.ceil(model_cores + gateway_cores) == 12
    assert plan.gpus == (1, 1) and plan.gateway_replicas == 1
    assert plan.per_core == pytest.approx(240 / (model_cores + gateway_cores))


def test_requests_are_cut_into_windows_as_the_service_cuts_them() -> None:
    work = Workload(requests=10.0, frames=500, flip=False)
    # 500 frames in 243-frame windows overlapping by 243 // 4 = 60: 3 windows
    assert work.windows_per_s(243) == 30
    plan = make_plan(work, flops_per_window=370.8e9, window=243, width=512, utilisation=1.0)
    assert plan.model_frames_per_s == 30 * 243 and plan.answered_per_s == 5000
    assert plan.cpu_cores == math.ceil(30 * 370.8 / CPU_GFLOPS_PER_CORE[512] + 10 * GATEWAY_CORE_S_PER_MESSAGE)
    assert plan.gpus == (math.ceil(30 * 0.3708 / 366.0), math.ceil(30 * 0.3708 / 229.0)) == (1, 1)


def test_the_command_prints_the_table_and_refuses_a_workload_it_cannot_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--model", "full", "--streams", "8", "--hop", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model: full, window 243, flip on; workload: 8 streams x 30 fps (one window per 8 frame")
    assert "needs 14,580 model frames/s" in out  # 8 x 30 / 8 windows/s x 243 frames x 2 passes
    assert "H100 GPUs, Triton (bf16)" in out and "estimate on paper, not measured" in out
    for argv, message in (
        (["plan"], "give --streams N and/or --requests-per-s R"),
        (["plan", "--streams", "2", "--utilisation", "1.5"], "--utilisation must be in (0, 1]"),
        (["plan", "--streams", "2", "--model", "huge"], "--model: unknown model config 'huge'"),
    ):
        assert main(argv) == 2
        assert capsys.readouterr().out.startswith(f"motionlift plan: {message}")
