"""`motionlift bench precision`: the accuracy cost of bf16 / fp16 against fp32 on the golden inputs."""

from __future__ import annotations

import re

import numpy as np
import pytest

from service.bench.precision import measure_errors
from service.cli import main
from tests.data import FIXTURES, Golden

CHECKPOINT = str(FIXTURES / "tiny_official.bin")


def test_rows_per_precision_and_window_with_errors_of_the_dtype_s_size(golden: Golden) -> None:
    rows = measure_errors("tiny", ["fp32", "bf16", "fp16"], [1, 27], checkpoint=CHECKPOINT)
    assert [(r.precision, r.window) for r in rows] == [
        ("fp32", 1), ("bf16", 1), ("fp16", 1), ("fp32", 27), ("bf16", 27), ("fp16", 27),
    ]  # fmt: skip
    by = {(r.precision, r.window): r for r in rows}
    assert by["fp32", 27].max_abs == 0.0  # the same model in the same dtype
    for window in (1, 27):
        bf16, fp16 = by["bf16", window], by["fp16", window]
        # The fp32 side is the official model's golden output.
        assert bf16.scale == pytest.approx(float(np.abs(golden[f"tiny_out_t{window}"]).max()), abs=1e-5)
        # bf16 keeps 8 significant bits and fp16 11: errors near 2^-8 and 2^-11 of the output scale.
        assert 1e-3 < bf16.max_abs / bf16.scale < 3e-2
        assert 1e-4 < fp16.max_abs / fp16.scale < 4e-3
        assert fp16.max_abs < bf16.max_abs


def test_unknown_window_or_precision_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"no golden input for window\(s\) \[5\]; there are \[1, 27, 81, 100, 243\]"):
        measure_errors("tiny", ["bf16"], [5])
    assert main(["bench", "precision", "--precisions", "int8"]) == 2
    assert "precision must be one of fp32, bf16, fp16, got 'int8'" in capsys.readouterr().err


def test_cli_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "precision", "--checkpoint", CHECKPOINT, "--precisions", "bf16", "--windows", "27"]) == 0
    out = capsys.readouterr().out
    assert "max abs error against fp32, golden inputs (2 sequences per window)" in out
    assert "config  precision  window  max abs error  output max  error / max  seconds" in out
    row = r"\n  tiny +bf16 +27 +\d\.\d\de-0[34] +0\.\d{3} +\d\.\d\de-0[23] +\d+\.\d\d\n"
    assert re.search(row, out), out
