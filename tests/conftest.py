from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from service.api.server import build_app
from service.config import Settings
from tests.data import FIXTURES, Golden
from tests.servers import serve_rest


@pytest.fixture(scope="session")
def golden() -> Golden:
    with np.load(FIXTURES / "golden_tiny.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official tiny reference checkpoint exported as TorchScript, as `motionlift export` writes it."""
    from service.cli import main

    out = tmp_path_factory.mktemp("model") / "model.pt"
    code = main(["export", "--config", "tiny", "--checkpoint", str(FIXTURES / "tiny_official.bin"), "--out", str(out)])
    assert code == 0
    return out


@dataclass(frozen=True)
class Served:
    """Where the session's service answers: REST base URL and gRPC target (``host:port``)."""

    rest_url: str
    grpc_target: str


@pytest.fixture(scope="session")
def served(tiny_model: Path) -> Iterator[Served]:
    """The whole service (uvicorn + gRPC, one process and loop) on the tiny model, both on free ports of
    127.0.0.1, for the whole session (tests must not change its state)."""
    settings = Settings(model=tiny_model, max_frames=2000, max_body_bytes=4 * 1024 * 1024, grpc_port=0)
    app = build_app(settings)
    with serve_rest(app) as url:
        yield Served(url, f"127.0.0.1:{app.state.grpc.port}")


@pytest.fixture(scope="session")
def rest_url(served: Served) -> str:
    return served.rest_url


@pytest.fixture(scope="session")
def grpc_target(served: Served) -> str:
    return served.grpc_target
