"""Triton errors map onto our error table by gRPC status code alone; a failed load is explained from the repository
index; statistics add up; the repository layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.backends.triton.status import LIBTORCH_HINT, ServerStats, load_failure, status_code, to_lift_error
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


def index(*models: tuple[str, str, str, str]) -> object:
    """A ``RepositoryIndexResponse`` (tritonclient's message) of (name, version, state, reason) entries."""
    from tritonclient.grpc import service_pb2

    response = service_pb2.RepositoryIndexResponse()
    for name, version, state, reason in models:
        response.models.add(name=name, version=version, state=state, reason=reason)
    return response


def test_a_failed_load_is_explained_from_the_repository_index() -> None:
    pytest.importorskip("tritonclient.grpc", reason="needs the `gateway` extra")
    failed = index(("dstformer", "1", "UNAVAILABLE", "PytorchStreamReader failed"), ("other", "1", "READY", ""))
    assert (
        load_failure(failed, "dstformer") == f"version 1 failed to load: PytorchStreamReader failed ({LIBTORCH_HINT})"
    )
    assert load_failure(failed, "dstformer", "2") == "its model repository has no version 2 of model 'dstformer'"
    assert load_failure(failed, "x") == "its model repository has no model 'x' (it has dstformer, other)"
    assert load_failure(index(), "x") == "its model repository has no model 'x'"
    # Loading, ready, or unloaded on purpose (no reason): nothing failed, nothing to say.
    for state, reason in (("LOADING", ""), ("READY", ""), ("UNAVAILABLE", ""), ("UNAVAILABLE", "unloaded")):
        assert load_failure(index(("dstformer", "1", state, reason)), "dstformer") is None
    two = index(("m", "1", "UNAVAILABLE", "bad 1"), ("m", "2", "READY", ""), ("m", "3", "UNAVAILABLE", "bad 3"))
    assert load_failure(two, "m", "2") is None
    assert (
        load_failure(two, "m") == f"version 1 failed to load: bad 1; version 3 failed to load: bad 3 ({LIBTORCH_HINT})"
    )


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
