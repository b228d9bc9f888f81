"""Command-line tools the deployment tests run, installed into the venv by the dev extras (.ci/setup --dev)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """The venv's ``name`` (before any other on PATH: e.g. a system kubectl of another version); skips the test
    when the dev extras are not installed."""
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is installed by the dev extras (.ci/setup --dev)")
    return found
