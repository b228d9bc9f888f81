"""Triton errors map onto our error table by gRPC status code alone; statistics add up; the repository layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.backends.triton.status import ServerStats, status_code, to_lift_error
from service.errors import BackendError, DeadlineExceeded, Overloaded, Unavailable
from service.model.repository import production_config, repository_model_dir


class FakeTritonError(Exception):
    """What tritonclient's gRPC clients raise: ``status()`` is ``str(grpc.StatusCode.X)``."""

    def __init__(self, status: str | None, message: str = "whatever text Triton chose") -> None:
        super().__init__(message)
        self._status = status

    def status(self) -> str | None:
        return self._status


@pytest.mark.parametrize(
    ("status", "kind", "http"),
    [
        ("StatusCode.UNAVAILABLE", Unavailable, 503),
        ("StatusCode.NOT_FOUND", Unavailable, 503),
        ("StatusCode.RESOURCE_EXHAUSTED", Overloaded, 503),
        ("StatusCode.DEADLINE_EXCEEDED", DeadlineExceeded, 504),
        ("StatusCode.INVALID_ARGUMENT", BackendError, 500),
        ("StatusCode.INTERNAL", BackendError, 500),
        (None, BackendError, 500),
    ],
)
def test_errors_map_by_status_code(status: str | None, kind: type, http: int) -> None:
    error = to_lift_error(FakeTritonError(status, "Exceeds maximum queue size / unavailable / not found"), "h:1")
    assert type(error) is kind and error.http_status == http
    assert "h:1" in error.message and status_code(FakeTritonError(status)) in error.message


def test_stats_add_and_subtract() -> None:
    a = ServerStats(2, 1, 0.5, 0.1, 1.0, 0.1)
    assert (a + a - a) == a and (a + a).compute_s == pytest.approx(2.4)


def test_config_only_written_in_a_repository_layout(tmp_path: Path) -> None:
    assert repository_model_dir(tmp_path / "dstformer" / "3" / "model.pt") == tmp_path / "dstformer"
    assert repository_model_dir(tmp_path / "model" / "model.pt") is None
    text = production_config({"window": 81, "note": 'quote " and \\ backslash'}, name="m")
    assert 'name: "m"' in text and "dims: [ 81, 17, 3 ]" in text and '\\"' in text


@pytest.mark.slow
def test_the_triton_gateway_never_imports_torch() -> None:
    """The gateway image for Triton has no torch: building the service with backend=triton must not need it."""
    import subprocess
    import sys

    script = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not in the gateway image")
sys.meta_path.insert(0, Block())
from service.cli import build_parser
from service.config import Settings
from service.api.server import build_app
build_parser(["serve"])
build_app(Settings(backend="triton"))
import service.backends.triton.metrics, service.backends.triton.repo
"""
    pytest.importorskip("tritonclient.grpc.aio", reason="needs the `triton` extra")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
