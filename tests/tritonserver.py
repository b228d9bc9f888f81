"""A real tritonserver for the Triton tests: the tiny reference model exported into a production repository
(``motionlift export`` writes its ``config.pbtxt``), its CPU twin derived into a temporary repository, and the
server bundled in the ``nvidia-pytriton`` wheel serving that twin on free ports of 127.0.0.1
(``service/bench/tritonserver.py``; recipe in shared/design/TRITON.md). Nothing generated lands in the work tree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class TritonSetup:
    """The production model folder (``config.pbtxt`` + ``1/model.pt``) and the server serving its CPU twin."""

    production: Path
    model_file: Path
    server: object  # service.bench.tritonserver.LocalTriton (imported lazily: the wheel is an optional extra)


def skip_without_triton() -> None:
    """Skip unless the Triton extras are installed (`pip install -e .[triton-test]`, as .ci/setup --dev does)."""
    pytest.importorskip("tritonclient.grpc.aio", reason="needs the `triton` extra")
    pytest.importorskip("pytriton", reason="needs the `triton-test` extra (nvidia-pytriton bundles tritonserver)")


def export_production(root: Path) -> Path:
    """Export the tiny reference checkpoint to ``root/dstformer/1/model.pt`` (+ ``config.pbtxt``)."""
    from service.cli import main

    model_file = root / "dstformer" / "1" / "model.pt"
    args = ["export", "--config", "tiny", "--checkpoint", str(FIXTURES / "tiny_official.bin"), "--out", str(model_file)]
    assert main(args) == 0
    return model_file


def export_twin(tmp: Path) -> Path:
    """A fresh production export in ``tmp/production`` and its CPU twin in ``tmp/cpu``; returns the model file."""
    from service.backends.triton.repo import write_cpu_repository

    model_file = export_production(tmp / "production")
    write_cpu_repository(model_file.parent.parent, tmp / "cpu")
    return model_file


@contextmanager
def triton_session(tmp: Path, flags: Sequence[str] = ()) -> Iterator[TritonSetup]:
    """Start Triton once (about 5 s) on the CPU twin of a fresh production export, with ``flags`` added to its
    command line; stopped and cleaned at exit."""
    from service.bench.tritonserver import LocalTriton

    model_file = export_twin(tmp)
    server = LocalTriton(tmp / "cpu", threads=1, flags=flags)
    try:
        server.start()
        yield TritonSetup(model_file.parent.parent, model_file, server)
    finally:
        server.close()
