"""A model Triton fails to load, on a REAL tritonserver: the gateway says why (Triton's reason, from its repository
index) in one error line and in the error it gives up with, instead of only "not ready".

The failure is a real one: the production repository (``pytorch_libtorch``, as `motionlift export` writes it for
NVIDIA's image) served by the CPU tritonserver of the ``nvidia-pytriton`` wheel, which has no pytorch backend. A
TorchScript file from a newer PyTorch than the image's libtorch fails the same way, with another reason."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.errors import Unavailable
from tests.tritonserver import export_production, skip_without_triton

skip_without_triton()

from service.backends.triton.backend import TritonBackend  # noqa: E402  (after the skip: needs tritonclient)
from service.bench.tritonserver import LocalTriton  # noqa: E402

pytestmark = pytest.mark.slow
REASON = "unable to find backend library for backend 'pytorch'"


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    """A server that stays up with model ``dstformer`` failed to load (not strict: no exit, ready without it)."""
    root = tmp_path_factory.mktemp("broken")
    export_production(root)
    server = LocalTriton(Path(root), strict=False)
    try:
        server.start()
        yield server
    finally:
        server.close()


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "service.backends.triton.backend" and r.levelno >= 40]


async def test_a_model_that_failed_to_load_is_named_with_its_reason(
    broken: LocalTriton, caplog: pytest.LogCaptureFixture
) -> None:
    backend = TritonBackend([broken.grpc_url], start_wait_s=1.0, poll_s=0.1)
    with caplog.at_level(logging.INFO), pytest.raises(Unavailable) as raised:
        await backend.start()
    message = raised.value.message
    assert message.startswith(f"no Triton server at {broken.grpc_url} has model 'dstformer' ready after 1 s; ")
    assert f"{broken.grpc_url}: version 1 failed to load: " in message and REASON in message
    assert "docker/triton-pytorch.toml" in message
    logged = errors(caplog)
    assert len(logged) == 1  # once per server and reason, not once per poll
    assert logged[0].startswith(f"Triton at {broken.grpc_url} cannot serve model 'dstformer': version 1 failed")
    assert REASON in logged[0]


async def test_a_model_the_repository_lacks_is_named_with_what_it_has(
    broken: LocalTriton, caplog: pytest.LogCaptureFixture
) -> None:
    backend = TritonBackend([broken.grpc_url], model="dstformr", start_wait_s=0.5, poll_s=0.1)
    with caplog.at_level(logging.INFO), pytest.raises(Unavailable) as raised:
        await backend.start()
    assert raised.value.message.endswith(
        f"; {broken.grpc_url}: its model repository has no model 'dstformr' (it has dstformer)"
    )
    assert errors(caplog) == [
        f"Triton at {broken.grpc_url} cannot serve model 'dstformr': its model repository has no model 'dstformr' "
        "(it has dstformer)"
    ]
