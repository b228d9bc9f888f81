"""Precision end to end: `motionlift export --precision`, `serve --precision`, through a real uvicorn server."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import torch

from service.api.server import build_app
from service.backends.torchscript.backend import TorchScriptBackend
from service.cli import main
from service.config import Settings
from service.errors import Unavailable
from service.model.export import read_meta
from tests.data import FIXTURES, Golden
from tests.servers import serve_rest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bf16_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bf16") / "model.pt"
    checkpoint = str(FIXTURES / "tiny_official.bin")
    args = ["export", "--config", "tiny", "--checkpoint", checkpoint, "--precision", "bf16", "--out", str(out)]
    assert main(args) == 0
    return out


def _serve(model: Path, **settings: Any) -> Iterator[str]:
    app = build_app(Settings(model=model, grpc_port=0, **settings))
    with serve_rest(app) as url:
        yield url


@pytest.fixture(scope="module")
def bf16_export_url(bf16_model: Path) -> Iterator[str]:
    yield from _serve(bf16_model)


@pytest.fixture(scope="module")
def bf16_cast_url(tiny_model: Path) -> Iterator[str]:
    yield from _serve(tiny_model, precision="bf16")


def _lift(url: str, golden: Golden) -> npt.NDArray[np.float32]:
    body = {"keypoints": golden["input_t27"][0].tolist(), "format": "h36m", "normalization": "none", "flip": False}
    r = httpx.post(f"{url}/lift", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["joints3d"], dtype=np.float32)


def test_export_records_the_precision(bf16_model: Path, tiny_model: Path) -> None:
    assert read_meta(bf16_model)["precision"] == "bf16"
    assert read_meta(tiny_model)["precision"] == "fp32"


def test_bf16_export_and_bf16_serving_of_an_fp32_file_agree_exactly(
    bf16_export_url: str, bf16_cast_url: str, rest_url: str, golden: Golden
) -> None:
    for url in (bf16_export_url, bf16_cast_url):
        assert httpx.get(f"{url}/v1/model").json()["precision"] == "bf16"
    assert httpx.get(f"{rest_url}/v1/model").json()["precision"] == "fp32"
    fp32 = _lift(rest_url, golden)
    exported, cast = _lift(bf16_export_url, golden), _lift(bf16_cast_url, golden)
    # Both round the same fp32 weights to bf16 once, so they compute the same thing.
    np.testing.assert_array_equal(exported, cast)
    # bf16 keeps 8 significant bits: the answer moves, by much less than the pose's own scale.
    error = float(np.abs(exported - fp32).max())
    assert 0 < error < 0.02 * float(np.abs(fp32).max())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
async def test_cuda_on_a_machine_without_one_fails_to_start_naming_the_device(tiny_model: Path) -> None:
    backend = TorchScriptBackend(tiny_model, device="cuda:0")
    with pytest.raises(Unavailable, match=r"device 'cuda:0' asked for, but there is .*; use --device cpu or auto"):
        await backend.start()
    assert not backend.ready
    await backend.close()


def test_serve_rejects_an_unknown_precision_or_device() -> None:
    with pytest.raises(ValueError, match="precision"):
        Settings(precision="int8")
    with pytest.raises(ValueError, match="device"):
        Settings(device="gpu")


def _serve_cli(*flags: str) -> subprocess.CompletedProcess[str]:
    code = f"from service.cli import main; raise SystemExit(main({list(flags)!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_serve_says_in_one_line_why_it_cannot_start(tiny_model: Path) -> None:
    absent_gpu = _serve_cli("serve", "--model", str(tiny_model), "--device", "cuda:0")
    assert absent_gpu.returncode == 2
    assert re.fullmatch(
        r"motionlift serve: device 'cuda:0' asked for, but there is (a CPU-only torch build|no visible GPU); "
        r"use --device cpu or auto",
        absent_gpu.stderr.strip(),
    ), absent_gpu.stderr
    missing = _serve_cli("serve", "--model", "/nonexistent/model.pt")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "motionlift serve: model file /nonexistent/model.pt does not exist; run `bash .ci/setup` or `motionlift export`"
    )
