"""`pip install 'motionlift[client]'` in a fresh virtual environment: the client imports and lifts against the
session's real service, with neither torch nor FastAPI (nor pydantic, uvicorn, the server's other parts)
installed or imported."""

from __future__ import annotations

import json
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from tests.conftest import Served
from tests.data import FIXTURES, REPO

pytestmark = pytest.mark.slow

SERVER_ONLY = ("torch", "fastapi", "starlette", "uvicorn", "pydantic", "pydantic_settings", "prometheus_client")

# Run in the client's environment with the SERVER_ONLY names as arguments.
PROBE = """
import importlib.util, json, sys
import service.client
from service.client import MotionLiftClient
names = sys.argv[1:]
print(json.dumps({
    "installed": [m for m in names if importlib.util.find_spec(m) is not None],
    "imported": sorted(m for m in sys.modules if m.split(".")[0] in names),
    "client": MotionLiftClient.__module__,
}))
"""


@pytest.fixture(scope="module")
def client_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with only the package's `client` extra installed (from this source tree)."""
    home = tmp_path_factory.mktemp("client-venv")
    source = tmp_path_factory.mktemp("source")  # a copy, so that the build leaves nothing in the work tree
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "service", source / "service", ignore=shutil.ignore_patterns("__pycache__"))
    venv.EnvBuilder(with_pip=True).create(home)
    pip = [str(home / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    result = subprocess.run([*pip, f"{source}[client]"], capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return home


def test_the_client_needs_no_server_packages(client_env: Path) -> None:
    python = str(client_env / "bin" / "python")
    result = subprocess.run(
        [python, "-c", PROBE, *SERVER_ONLY], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    assert probe == {"installed": [], "imported": [], "client": "service.client.api"}


def test_motionlift_lift_works_from_the_client_install(client_env: Path, served: Served) -> None:
    command = [str(client_env / "bin" / "motionlift"), "lift", str(FIXTURES / "example_request.json")]
    for target in (["--url", served.rest_url], ["--grpc", served.grpc_target]):
        result = subprocess.run([*command, *target], capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["frames"] == 2 and len(answer["joints3d"]) == 2 and len(answer["joints3d"][0]) == 17
