"""The OpenMP wait policy: set before torch loads, left alone when the environment chose one, never claimed when
torch was loaded first."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import os, sys
from service.backends.torchscript.threads import wait_passively
print(wait_passively(), os.environ.get("OMP_WAIT_POLICY"))
"""


@pytest.mark.parametrize(
    ("environment", "before", "expected"),
    [
        ({}, "", "True PASSIVE"),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "", "False ACTIVE"),  # an operator's choice wins
        ({}, "import torch\n", "False None"),  # too late: torch's OpenMP has read the environment already
    ],
)
def test_wait_passively(environment: dict[str, str], before: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | environment
    result = subprocess.run(
        [sys.executable, "-c", before + PROBE], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
