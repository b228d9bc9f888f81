"""The model card's learning curve: stages found where the learning rate jumps, a picture written."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.training.curve import draw, read, stage_starts

HEADER = "step,seconds,lr,train_loss,train_mpjpe_mm,heldout_clean_mm,heldout_noisy_mm\n"


def test_stages_begin_where_the_learning_rate_jumps_back_up(tmp_path: Path) -> None:
    csv = tmp_path / "curve.csv"
    rows = [
        (100, 60, 1e-3, 200),
        (200, 120, 5e-4, 150),
        (300, 180, 5e-5, 120),
        (400, 240, 3e-4, 125),
        (500, 300, 2e-5, 110),
    ]
    csv.write_text(HEADER + "".join(f"{s},{t},{lr},1,1,{mm},{mm + 10}\n" for s, t, lr, mm in rows), encoding="utf-8")
    assert stage_starts(read(csv)) == [3.0]  # the first stage's last row, 180 s
    out = tmp_path / "curve.png"
    draw(csv, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_csv_without_the_held_out_column_is_named(tmp_path: Path) -> None:
    csv = tmp_path / "curve.csv"
    csv.write_text("step,seconds,lr,heldout_clean_mm\n100,60,0.001,200\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no 'heldout_noisy_mm' column"):
        read(csv)
