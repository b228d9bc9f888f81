"""The committed code in service/api/pb/ is exactly what proto/generate.py makes from proto/ (never hand-edited)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.data import REPO


def test_generated_code_is_current(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("proto_generate", REPO / "proto" / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    fresh = {p.relative_to(tmp_path) for p in generate.generate(tmp_path)}
    committed = REPO / "service" / "api" / "pb"
    on_disk = {p.relative_to(committed) for p in committed.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert fresh == on_disk, "service/api/pb/ has extra or missing files: run `.venv/bin/python proto/generate.py`"
    for rel in sorted(fresh):
        if (tmp_path / rel).read_text() != (committed / rel).read_text():
            pytest.fail(f"service/api/pb/{rel} differs from proto/: run `.venv/bin/python proto/generate.py`")


def test_imports_resolve_inside_the_package() -> None:
    from service.api.pb.motionlift.v1 import lift_pb2, lift_pb2_grpc

    assert lift_pb2.DESCRIPTOR.package == "motionlift.v1"
    assert lift_pb2_grpc.LifterStub.__module__ == "service.api.pb.motionlift.v1.lift_pb2_grpc"
