"""The Triton backend against a REAL tritonserver on 127.0.0.1 (CPU, python-backend twin of the production model):
same joints as in-process, the production config agrees with the exported model, and the service follows Triton
down and back up without a restart. Triton starts once for the module (tests/tritonserver.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from service.backends.torchscript.backend import TorchScriptBackend
from service.config import Settings
from tests.data import REPO
from tests.servers import serve_rest
from tests.tritonserver import TritonSetup, skip_without_triton, triton_session

skip_without_triton()

from service.backends.triton.backend import TritonBackend  # noqa: E402  (after the skip: needs tritonclient)
from service.backends.triton.repo import cpu_config, parse_config, tensor_spec  # noqa: E402

pytestmark = pytest.mark.slow
EXAMPLE = REPO / "tests" / "fixtures" / "example_request.json"


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonSetup]:
    with triton_session(tmp_path_factory.mktemp("triton")) as setup:
        yield setup


@pytest.fixture(scope="module")
def gateway(triton: TritonSetup) -> Iterator[tuple[str, str]]:
    """The whole service with ``backend=triton``: (REST URL, gRPC target)."""
    from service.api.server import build_app

    settings = Settings(backend="triton", triton_urls=[triton.server.grpc_url], grpc_port=0, max_frames=2000)  # type: ignore[attr-defined]
    app = build_app(settings)
    with serve_rest(app) as url:
        yield url, f"127.0.0.1:{app.state.grpc.port}"


def check_against_model(config_text: str, model_file: Path) -> None:
    """The config parses with Triton's schema and states the exported model's metadata, names and dims."""
    import torch

    from service.backends.triton.repo import config_meta
    from service.model.export import load_torchscript

    config = parse_config(config_text)
    spec = tensor_spec(config)
    module, meta = load_torchscript(model_file)
    assert config_meta(config) == meta
    assert config.name == model_file.parent.parent.name and config.platform == "pytorch_libtorch"
    assert [g.kind for g in config.instance_group] == [config.instance_group[0].KIND_GPU]
    assert config.dynamic_batching.max_queue_delay_microseconds == 0  # the gateway batches; Triton never waits
    warm = config.model_warmup[0].inputs[spec.input]
    assert list(warm.dims) == [meta["window"], 17, 3]
    x = torch.zeros(2, meta["window"], *spec.dims[1:])  # batch dim + the config's dims with -1 = the window
    with torch.inference_mode():
        assert tuple(module(x).shape) == (2, meta["window"], *spec.dims[1:])


def test_exported_config_agrees_with_the_model(triton: TritonSetup) -> None:
    check_against_model((triton.production / "config.pbtxt").read_text(), triton.model_file)


def test_committed_production_config_agrees_with_the_default_model() -> None:
    model_file = REPO / "model_repository" / "dstformer" / "1" / "model.pt"
    if not model_file.is_file():
        pytest.skip("the default model is exported by .ci/setup")
    check_against_model((model_file.parent.parent / "config.pbtxt").read_text(), model_file)


def test_cpu_twin_differs_only_in_backend_and_device(triton: TritonSetup) -> None:
    production = parse_config((triton.production / "config.pbtxt").read_text())
    twin = parse_config((triton.server.repository / "dstformer" / "config.pbtxt").read_text())  # type: ignore[attr-defined]
    assert twin == cpu_config(production)
    for field in ("name", "input", "output", "max_batch_size", "dynamic_batching", "model_warmup"):
        assert getattr(twin, field) == getattr(production, field), field
    assert twin.backend == "python" and twin.parameters["motionlift"] == production.parameters["motionlift"]


async def test_same_joints_as_in_process(triton: TritonSetup) -> None:
    remote = TritonBackend([triton.server.grpc_url], timeout_s=30)  # type: ignore[attr-defined]
    local = TorchScriptBackend(triton.model_file, threads=1)
    await remote.start()
    await local.start()
    try:
        assert remote.ready and remote.info.window == local.info.window == 243
        assert remote.info.params == local.info.params and remote.info.device == "triton/cpu"
        rng = np.random.default_rng(0)
        for shape in ((3, 243, 17, 3), (2, 27, 17, 3)):
            x = rng.uniform(-1, 1, shape).astype(np.float32)
            a, b = await remote.infer(x), await local.infer(x)
            assert a.shape == shape and float(np.abs(a - b).max()) <= 1e-5
            tail, local_tail = await remote.infer(x, first=20), await local.infer(x, first=20)  # Triton: sliced
            assert tail.shape == local_tail.shape == (shape[0], shape[1] - 20, 17, 3)
            assert float(np.abs(tail - a[:, 20:]).max()) <= 1e-5 and float(np.abs(local_tail - a[:, 20:]).max()) <= 1e-5
        stats = await remote.server_stats()
        assert stats.requests >= 2 and stats.compute_infer_s > 0
    finally:
        await remote.close()
        await local.close()


async def test_several_urls_errors_by_status_code(triton: TritonSetup) -> None:
    from service.bench.process import free_port
    from service.errors import BackendError, Unavailable

    dead = f"127.0.0.1:{free_port()}"  # nothing listens there: a worker that is down
    backend = TritonBackend([dead, triton.server.grpc_url], timeout_s=30)  # type: ignore[attr-defined]
    await backend.start()
    try:
        assert backend.ready  # one of two servers is enough
        x = np.zeros((2, 27, 17, 3), np.float32)
        for _ in range(3):  # every batch reaches the live server
            assert (await backend.infer(x)).shape == x.shape
        with pytest.raises(BackendError):  # Triton's INVALID_ARGUMENT: our fault, not the caller's
            await backend.infer(np.zeros((1, 27, 16, 3), np.float32))
    finally:
        await backend.close()
    missing = TritonBackend([triton.server.grpc_url], model="nope", start_wait_s=0.3)  # type: ignore[attr-defined]
    with pytest.raises(Unavailable):
        await missing.start()


def test_triton_exports_the_metrics_the_autoscalers_read(triton: TritonSetup) -> None:
    """deploy/kubernetes scales Triton on its own metrics (tests/promql.py: TRITON); the per-model ones are here
    on a real server, labelled by model. nv_gpu_utilization appears only with a GPU."""
    from tests.promql import TRITON

    text = httpx.get(f"http://127.0.0.1:{triton.server.metrics_port}/metrics", timeout=10).text  # type: ignore[attr-defined]
    names = {line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")}
    assert TRITON - names == {"nv_gpu_utilization"}
    assert 'nv_inference_queue_duration_us{model="dstformer",version="1"}' in text


def test_service_over_triton_answers_as_in_process(gateway: tuple[str, str], rest_url: str) -> None:
    body = EXAMPLE.read_bytes()
    headers = {"content-type": "application/json"}
    via_triton = httpx.post(f"{gateway[0]}/lift", content=body, headers=headers, timeout=60).json()
    in_process = httpx.post(f"{rest_url}/lift", content=body, headers=headers, timeout=60).json()
    error = np.abs(np.asarray(via_triton["joints3d"]) - np.asarray(in_process["joints3d"])).max()
    assert error <= 1e-5
    assert via_triton["latency_ms"]["inference"] > 0  # the Triton round trip of the request's batches
    model = httpx.get(f"{gateway[0]}/v1/model").json()
    assert model["device"] == "triton/cpu" and model["config"] == "tiny"
    assert "motionlift_triton_compute_seconds" in httpx.get(f"{gateway[0]}/metrics").text


def _grpc_lift(target: str) -> Any:
    from service.api.pb.motionlift.v1 import lift_pb2 as pb
    from service.api.pb.motionlift.v1 import lift_pb2_grpc

    kp = np.random.default_rng(0).uniform(0.1, 0.9, (10, 17, 3)).astype(np.float32)
    track = pb.Track(keypoints=pb.Keypoints(frames=10, joints=17, channels=3, values=kp.ravel()))
    with grpc.insecure_channel(target) as channel:
        stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
        return stub.Lift(pb.LiftRequest(tracks=[track], format=pb.FORMAT_H36M), timeout=5)


def _health(target: str, expected: str) -> str:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + 1.0  # the health follower polls every 0.25 s
    with grpc.insecure_channel(target) as channel:
        while True:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(status.status)
            if name == expected or time.monotonic() > deadline:
                return name
            time.sleep(0.05)


def test_triton_down_then_up_without_restarting_the_service(triton: TritonSetup, gateway: tuple[str, str]) -> None:
    url, target = gateway
    body = EXAMPLE.read_bytes()
    headers = {"content-type": "application/json"}
    assert httpx.get(f"{url}/readyz").status_code == 200
    server: Any = triton.server
    server.stop(kill=True)  # a crash: the process group is gone at once
    stopped = time.monotonic()
    while httpx.get(f"{url}/readyz").status_code != 503:
        assert time.monotonic() - stopped < 1.0, "/readyz still 200 a second after Triton stopped"
        time.sleep(0.02)
    answer = httpx.post(f"{url}/lift", content=body, headers=headers, timeout=5)
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "unavailable"
    with pytest.raises(grpc.RpcError) as info:
        _grpc_lift(target)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - stopped < 1.0, "not answered within a second of Triton stopping"
    assert _health(target, "NOT_SERVING") == "NOT_SERVING"

    server.start()  # same ports; the gateway's channel reconnects by itself
    started = time.monotonic()
    while httpx.get(f"{url}/readyz").status_code != 200:
        assert time.monotonic() - started < 5.0, "the service did not follow Triton back up"
        time.sleep(0.05)
    assert httpx.post(f"{url}/lift", content=body, headers=headers, timeout=30).status_code == 200
    assert len(_grpc_lift(target).tracks[0].joints3d.values) == 10 * 17 * 3
    assert _health(target, "SERVING") == "SERVING"
