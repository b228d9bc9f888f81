"""ONNX export: ONNX Runtime answers as TorchScript on the same input, the batch and frame axes are dynamic, the
metadata travels in the file and in the Triton config, and that config is a valid onnxruntime-backend config with
TensorRT in fp16 and the TorchScript config's interface."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from service.cli import main
from service.model.checkpoint import build_model
from service.model.configs import CONFIGS
from service.model.export import load_torchscript, read_meta
from service.model.repository import production_config, repository_model_dir
from tests.data import FIXTURES

onnx = pytest.importorskip("onnx", reason="needs the `onnx` extra")
ort = pytest.importorskip("onnxruntime", reason="needs the `onnx` extra")
pytest.importorskip("tritonclient.grpc", reason="the config is parsed with Triton's own schema (gateway extra)")

from service.backends.triton.repo import config_meta, parse_config, tensor_spec  # noqa: E402
from service.model.onnx import OPSET, export_onnx, read_onnx_meta  # noqa: E402

TOL = 1e-5  # issue 17: ONNX Runtime equals TorchScript within 1e-5
CHECKPOINT = str(FIXTURES / "tiny_official.bin")


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny reference checkpoint as `motionlift export --format onnx` writes it into a Triton layout."""
    out = tmp_path_factory.mktemp("repo") / "dstformer_onnx" / "1" / "model.onnx"
    assert main(["export", "--format", "onnx", "--config", "tiny", "--checkpoint", CHECKPOINT, "--out", str(out)]) == 0
    return out


def session(path: Path) -> Any:
    """An ONNX Runtime session on the CPU (untyped package)."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("frames", [27, 243])  # below and above the fused-attention length of the TorchScript model
@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_runtime_equals_torchscript(onnx_model: Path, tiny_model: Path, batch: int, frames: int) -> None:
    module, _ = load_torchscript(tiny_model)
    x = np.random.default_rng(batch * 1000 + frames).uniform(-1, 1, (batch, frames, 17, 3)).astype(np.float32)
    with torch.inference_mode():
        expected = module(torch.from_numpy(x)).numpy()
    got = session(onnx_model).run(["joints3d__0"], {"keypoints__0": x})[0]
    assert got.shape == (batch, frames, 17, 3)
    assert float(np.abs(got - expected).max()) <= TOL


def test_a_scripted_module_exports_too(tiny_model: Path, tmp_path: Path) -> None:
    # `motionlift bench onnx` exports the served TorchScript file through the same function.
    module, _ = load_torchscript(tiny_model)
    export_onnx(module, tmp_path / "model.onnx", frames=27)
    x = np.random.default_rng(5).uniform(-1, 1, (2, 100, 17, 3)).astype(np.float32)
    with torch.inference_mode():
        expected = module(torch.from_numpy(x)).numpy()
    assert float(np.abs(session(tmp_path / "model.onnx").run(None, {"keypoints__0": x})[0] - expected).max()) <= TOL
    assert not (tmp_path / "config.pbtxt").exists()  # no metadata, no repository layout: the file alone


def test_graph_has_the_configs_names_and_dynamic_axes(onnx_model: Path) -> None:
    model = onnx.load(str(onnx_model))
    spec = tensor_spec(parse_config((onnx_model.parent.parent / "config.pbtxt").read_text()))

    def shape(value: object) -> list[str | int]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # type: ignore[attr-defined]

    assert [i.name for i in model.graph.input] == [spec.input] and [o.name for o in model.graph.output] == [spec.output]
    assert shape(model.graph.input[0]) == shape(model.graph.output[0]) == ["batch", "frames", 17, 3]
    # Triton 24.10 ships ONNX Runtime 1.19.2 (Triton's compatibility matrix), which reads IR <= 10 and opset <= 21.
    assert model.ir_version <= 10 and [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    assert "If" not in {n.op_type for n in model.graph.node}  # straight-line graph for TensorRT


def test_metadata_in_the_file_and_the_config(onnx_model: Path, tiny_model: Path) -> None:
    meta = read_onnx_meta(onnx_model)
    config = parse_config((onnx_model.parent.parent / "config.pbtxt").read_text())
    assert config_meta(config) == meta  # what the gateway's /v1/model reads
    torchscript = read_meta(tiny_model)
    assert meta == {**torchscript, "format": "onnx"}  # joints, window, hyperparameters, weights: all kept
    assert meta["window"] == 243 and meta["params"] == 294_023 and meta["precision"] == "fp32"


def test_config_is_onnxruntime_with_tensorrt_fp16(onnx_model: Path) -> None:
    config = parse_config((onnx_model.parent.parent / "config.pbtxt").read_text())
    assert config.name == "dstformer_onnx" and config.platform == "onnxruntime_onnx"
    assert [g.kind for g in config.instance_group] == [config.instance_group[0].KIND_GPU]
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    assert dict(accelerator.parameters) == {
        "precision_mode": "FP16",
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": "/tmp/motionlift-tensorrt",
        "trt_profile_min_shapes": "keypoints__0:1x1x17x3",
        "trt_profile_opt_shapes": "keypoints__0:8x243x17x3",
        "trt_profile_max_shapes": "keypoints__0:32x243x17x3",
    }
    versions = {k: config.parameters[k].string_value for k in ("torch_version", "onnx_version", "onnx_opset")}
    assert versions == {"torch_version": torch.__version__, "onnx_version": onnx.__version__, "onnx_opset": "17"}
    assert "INFERENCE_MODE" not in config.parameters  # a pytorch_libtorch option
    assert list(config.model_warmup[0].inputs["keypoints__0"].dims) == [243, 17, 3]


def test_same_interface_and_batching_as_the_torchscript_config(onnx_model: Path) -> None:
    onnx_config = parse_config((onnx_model.parent.parent / "config.pbtxt").read_text())
    torchscript = parse_config(production_config(read_onnx_meta(onnx_model), name="dstformer_onnx"))
    assert tensor_spec(onnx_config) == tensor_spec(torchscript)
    for field in ("name", "input", "output", "max_batch_size", "instance_group", "dynamic_batching", "model_warmup"):
        assert getattr(onnx_config, field) == getattr(torchscript, field), field
    assert onnx_config.parameters["motionlift"] == torchscript.parameters["motionlift"]


def test_repository_layout_of_onnx_files(tmp_path: Path) -> None:
    assert repository_model_dir(tmp_path / "m" / "2" / "model.onnx") == tmp_path / "m"
    assert repository_model_dir(tmp_path / "m" / "model.onnx") is None
    with pytest.raises(KeyError, match="unknown Triton platform 'tensorflow_savedmodel'"):
        production_config({"window": 27}, platform="tensorflow_savedmodel")


def test_only_float32_weights_export(tmp_path: Path) -> None:
    model = build_model(CONFIGS["tiny"], seed=0).half()
    with pytest.raises(ValueError, match=r"ONNX export needs float32 weights, got torch\.float16"):
        export_onnx(model, tmp_path / "model.onnx", {"window": 27})
    assert list(tmp_path.iterdir()) == []


def test_read_onnx_meta_rejects_foreign_files(tmp_path: Path, tiny_model: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model file not found"):
        read_onnx_meta(tmp_path / "none.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\xff\x00 not a protobuf")
    with pytest.raises(ValueError, match="is not an ONNX model file"):
        read_onnx_meta(tmp_path / "junk.onnx")
    export_onnx(load_torchscript(tiny_model)[0], tmp_path / "bare.onnx")
    with pytest.raises(ValueError, match="has no 'motionlift' metadata"):
        read_onnx_meta(tmp_path / "bare.onnx")


def export_error(capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    """What `motionlift export FLAGS` says on stderr when it refuses (exit code 2)."""
    assert main(["export", "--config", "tiny", *flags]) == 2
    return capsys.readouterr().err


def test_unknown_format_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--format", "tflite"])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]  # argparse quotes the choices or not by Python version
    assert last.startswith("motionlift export: error: argument --format: invalid choice: 'tflite' (choose from ")
    assert last.replace("'", "").endswith("(choose from torchscript, onnx)")


def test_format_conflicts_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export_error(capsys, "--format", "onnx", "--precision", "fp16", "--out", str(tmp_path / "m.onnx")) == (
        "motionlift export: --precision fp16 needs --format torchscript: an ONNX model is stored in fp32 (TensorRT "
        "runs it in fp16 by its Triton config)\n"
    )
    pt = tmp_path / "1" / "model.pt"
    said = f"motionlift export: --out {pt}: .pt is the torchscript suffix, but --format is onnx\n"
    assert export_error(capsys, "--format", "onnx", "--out", str(pt)) == said
    said = f"motionlift export: --out {tmp_path / 'm.onnx'}: .onnx is the onnx suffix, but --format is torchscript\n"
    assert export_error(capsys, "--out", str(tmp_path / "m.onnx")) == said
    assert list(tmp_path.iterdir()) == []


def test_without_onnx_it_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import fails as if it were not installed
    said = "motionlift export: --format onnx needs the onnx package: pip install 'motionlift[onnx]'\n"
    assert export_error(capsys, "--format", "onnx", "--out", str(tmp_path / "model.onnx")) == said
