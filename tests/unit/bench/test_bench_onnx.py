"""bench onnx without ONNX Runtime installed (an optional extra) says what to install."""

from __future__ import annotations

import sys

import pytest

from service.cli import main


def test_without_onnxruntime_it_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if it were not installed
    assert main(["bench", "onnx"]) == 2
    said = "motionlift bench onnx: needs onnx and onnxruntime (pip install 'motionlift[onnx]')\n"
    assert capsys.readouterr().out == said
