"""The ONNX export served by a REAL tritonserver on 127.0.0.1: the gateway calls it with no change but the model
name (``--triton-model dstformer_onnx``) and answers as the in-process TorchScript model; /v1/model describes it
from its config. Triton's onnxruntime backend is not in the nvidia-pytriton wheel (only the python backend is), so
the server runs the CPU twin of the production ONNX folder: the same model.onnx, run by ONNX Runtime inside the
python backend (``service/backends/triton/python_model.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.backends.torchscript.backend import TorchScriptBackend
from service.config import Settings
from tests.data import FIXTURES, REPO
from tests.servers import serve_rest
from tests.tritonserver import skip_without_triton

skip_without_triton()
pytest.importorskip("onnxruntime", reason="needs the `onnx` extra")

from service.backends.triton.backend import TritonBackend  # noqa: E402  (after the skip: needs tritonclient)
from service.backends.triton.repo import cpu_config, parse_config  # noqa: E402

pytestmark = pytest.mark.slow
MODEL = "dstformer_onnx"


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(gRPC URL, production model folder) of a tritonserver serving the CPU twin of the tiny ONNX export."""
    from service.backends.triton.repo import write_cpu_repository
    from service.bench.tritonserver import LocalTriton
    from service.cli import main

    tmp = tmp_path_factory.mktemp("triton-onnx")
    out = tmp / "production" / MODEL / "1" / "model.onnx"
    args = ["export", "--format", "onnx", "--config", "tiny", "--checkpoint", str(FIXTURES / "tiny_official.bin")]
    assert main([*args, "--out", str(out)]) == 0
    write_cpu_repository(out.parent.parent, tmp / "cpu")
    with LocalTriton(tmp / "cpu", threads=1) as server:
        yield server.grpc_url, out.parent.parent


def test_twin_drops_only_backend_device_and_tensorrt(triton: tuple[str, Path]) -> None:
    production = parse_config((triton[1] / "config.pbtxt").read_text())
    twin_folder = Path(triton[1]).parent.parent / "cpu" / MODEL
    twin = parse_config((twin_folder / "config.pbtxt").read_text())
    assert twin == cpu_config(production) and twin.backend == "python" and not twin.HasField("optimization")
    assert production.optimization.execution_accelerators.gpu_execution_accelerator[0].name == "tensorrt"
    assert (twin_folder / "1" / "model.onnx").resolve() == (triton[1] / "1" / "model.onnx").resolve()


async def test_same_joints_as_torchscript_in_process(triton: tuple[str, Path], tiny_model: Path) -> None:
    remote = TritonBackend([triton[0]], model=MODEL, timeout_s=30)
    local = TorchScriptBackend(tiny_model, threads=1)
    await remote.start()
    await local.start()
    try:
        assert remote.info.window == local.info.window == 243 and remote.info.params == local.info.params
        rng = np.random.default_rng(1)
        for shape in ((1, 243, 17, 3), (3, 27, 17, 3)):
            x = rng.uniform(-1, 1, shape).astype(np.float32)
            a, b = await remote.infer(x), await local.infer(x)
            assert a.shape == shape and float(np.abs(a - b).max()) <= 1e-5
    finally:
        await remote.close()
        await local.close()


def test_gateway_serves_the_onnx_model_by_name(triton: tuple[str, Path], rest_url: str) -> None:
    from service.api.server import build_app

    settings = Settings(backend="triton", triton_urls=[triton[0]], triton_model=MODEL, grpc_port=0, max_frames=2000)
    body = (REPO / "tests" / "fixtures" / "example_request.json").read_bytes()
    headers = {"content-type": "application/json"}
    with serve_rest(build_app(settings)) as url:
        via_onnx = httpx.post(f"{url}/lift", content=body, headers=headers, timeout=60).json()
        model = httpx.get(f"{url}/v1/model").json()
    in_process = httpx.post(f"{rest_url}/lift", content=body, headers=headers, timeout=60).json()
    assert np.abs(np.asarray(via_onnx["joints3d"]) - np.asarray(in_process["joints3d"])).max() <= 1e-5
    assert model["device"] == "triton/cpu" and model["config"] == "tiny" and model["window"] == 243
    assert model["params"] == 294_023 and model["precision"] == "fp32"
