from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from service.api.server import build_app
from service.config import Settings
from tests.servers import serve_rest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
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


def project(
    joints_mm: np.ndarray,
    *,
    width: int = 1920,
    height: int = 1080,
    focal: float = 1200.0,
    distance_mm: float = 4500.0,
) -> np.ndarray:
    """Pinhole projection of Y-up world joints seen from the front: pixels ``[T, 17, 2]``."""
    centred = joints_mm - joints_mm[:, :1].mean(axis=0, keepdims=True)
    x, y, z = centred[..., 0], -centred[..., 1], centred[..., 2] + distance_mm
    return np.stack([focal * x / z + width / 2, focal * y / z + height / 2], axis=-1).astype(np.float32)
