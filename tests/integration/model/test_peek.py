"""The model file's metadata read without torch, and the model processes sized from it (``server.model_layout``)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from service.api.server import model_layout
from service.backends.torchscript import cpus
from service.config import Settings
from service.model.export import read_meta
from service.model.peek import peek_meta, peek_params


def test_the_metadata_is_read_from_the_archive_as_torch_reads_it(tiny_model: Path) -> None:
    meta = peek_meta(tiny_model)
    assert meta == read_meta(tiny_model)
    assert peek_params(tiny_model) == 294_023 == meta["params"]


def _archive(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def test_what_cannot_be_read_so_is_none(tmp_path: Path) -> None:
    (tmp_path / "text.pt").write_text("not a zip")
    assert peek_meta(tmp_path / "missing.pt") is None
    assert peek_meta(tmp_path / "text.pt") is None
    assert peek_meta(tmp_path) is None  # a folder
    assert peek_meta(_archive(tmp_path / "none.pt", {"model/data.pkl": b"x"})) is None
    assert peek_meta(_archive(tmp_path / "list.pt", {"model/extra/motionlift.json": b"[1]"})) is None
    assert peek_meta(_archive(tmp_path / "bad.pt", {"model/extra/motionlift.json": b"{"})) is None
    two = {"a/extra/motionlift.json": b"{}", "b/extra/motionlift.json": b"{}"}
    assert peek_meta(_archive(tmp_path / "two.pt", two)) is None
    for params in ('"12"', "true", "0", "-5", "null"):
        odd = _archive(tmp_path / "odd.pt", {"m/extra/motionlift.json": f'{{"params": {params}}}'.encode()})
        assert peek_meta(odd) is not None and peek_params(odd) is None


def test_the_service_sizes_its_model_processes_by_the_model(tiny_model: Path, tmp_path: Path) -> None:
    usable = cpus.usable()
    assert model_layout(Settings(model=tiny_model)) == cpus.layout(usable, 294_023)
    large = _archive(tmp_path / "large.pt", {"m/extra/motionlift.json": json.dumps({"params": 42_466_317}).encode()})
    assert model_layout(Settings(model=large)) == (1, max(1, usable - 1))
    assert model_layout(Settings(model=tiny_model, instances=3)) == (3, max(1, (usable - 1) // 3))
    assert model_layout(Settings(model=tiny_model, device="cuda")) == (1, max(1, usable - 1))
    assert model_layout(Settings(model=tiny_model, threads=2)) == (1, 2)
