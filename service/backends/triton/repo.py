"""Reading the Triton model repository ``motionlift export`` writes (``service.model.repository``), and its CPU
twin for tests and benchmarks.

* ``parse_config`` / ``tensor_spec`` / ``config_meta`` read a ``config.pbtxt`` (with tritonclient's protobuf
  classes): the tensors the backend sends and the model's metadata, so the gateway needs no torch.
* ``write_cpu_repository`` derives from a production config a repository that any Triton build serves on a CPU
  (the python backend, e.g. the server bundled in the ``nvidia-pytriton`` wheel): the same name, tensors, dims,
  batching and metadata; only the backend, the instance kind and the backend-specific parameters and accelerators
  change. Its ``model.py`` (``service/backends/triton/python_model.py``) runs the same ``model.pt`` with torch, or
  the same ``model.onnx`` with ONNX Runtime on CPU (the production ONNX config's TensorRT exists only on a GPU).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.model.repository import CHANNELS, JOINTS, META_PARAM, PLATFORMS

PYTHON_MODEL = Path(__file__).with_name("python_model.py")


@dataclass(frozen=True)
class TensorSpec:
    """The served model's interface as a config states it (dims without the batch dimension)."""

    input: str
    output: str
    dims: tuple[int, ...]
    max_batch_size: int


def parse_config(text: str) -> Any:
    """Parse config.pbtxt text into ``tritonclient.grpc.model_config_pb2.ModelConfig`` (needs tritonclient).

    Raises ``google.protobuf.text_format.ParseError`` on a malformed config.
    """
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def tensor_spec(config: Any) -> TensorSpec:
    """The interface of a parsed ``ModelConfig`` (or the same message from ``get_model_config``).

    Raises ``ValueError`` unless it has exactly one FP32 input and one FP32 output of dims ``[-1, 17, 3]``.
    """
    from tritonclient.grpc import model_config_pb2

    if len(config.input) != 1 or len(config.output) != 1:
        raise ValueError(f"expected one input and one output, got {len(config.input)} and {len(config.output)}")
    inp, out = config.input[0], config.output[0]
    fp32 = model_config_pb2.TYPE_FP32
    dims = tuple(inp.dims)
    if inp.data_type != fp32 or out.data_type != fp32 or dims != (-1, JOINTS, CHANNELS) or tuple(out.dims) != dims:
        raise ValueError(f"unexpected tensors: {inp.name} {list(inp.dims)} -> {out.name} {list(out.dims)}")
    return TensorSpec(inp.name, out.name, dims, int(config.max_batch_size))


def config_meta(config: Any) -> dict[str, Any]:
    """The ``motionlift.json`` metadata carried by a parsed config; ``ValueError`` if missing or invalid."""
    if META_PARAM not in config.parameters:
        raise ValueError(f"the model config has no '{META_PARAM}' parameter (not written by `motionlift export`?)")
    try:
        meta = json.loads(config.parameters[META_PARAM].string_value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid '{META_PARAM}' parameter: {exc}") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"the '{META_PARAM}' parameter must hold a JSON object")
    return meta


def cpu_config(production: Any, *, instances: int = 1) -> Any:
    """A copy of a parsed production config for the python backend on CPU: same tensors, batching, warm-up and
    metadata; ``backend: "python"``, ``instance_group`` KIND_CPU, no libtorch-only parameters and no GPU
    accelerators (``optimization``)."""
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    config.CopyFrom(production)
    config.platform = ""
    config.backend = "python"
    del config.instance_group[:]
    config.instance_group.add(count=instances, kind=model_config_pb2.ModelInstanceGroup.KIND_CPU)
    if "INFERENCE_MODE" in config.parameters:  # a pytorch_libtorch option; the python model uses inference_mode
        del config.parameters["INFERENCE_MODE"]
    config.ClearField("optimization")  # TensorRT is the onnxruntime backend's, on a GPU
    return config


def write_cpu_repository(source_model_dir: Path, dest_repo: Path, *, instances: int = 1) -> Path:
    """Make ``dest_repo/<model>/`` a python-backend twin of ``source_model_dir`` (a production model folder).

    Every version folder's model file (``model.pt`` or ``model.onnx``) is linked (copied where links fail) and gets
    the generated ``model.py``. Returns the new model folder. Raises ``FileNotFoundError`` if the source has no
    ``config.pbtxt`` or a version folder no model file, and ``ValueError`` if that config is not a MotionLift one.
    """
    from google.protobuf import text_format

    production = parse_config((source_model_dir / "config.pbtxt").read_text())
    tensor_spec(production)
    config_meta(production)
    dest = dest_repo / source_model_dir.name
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.pbtxt").write_text(text_format.MessageToString(cpu_config(production, instances=instances)))
    for version in sorted(p for p in source_model_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        source = next((version / f for f in PLATFORMS if (version / f).is_file()), None)
        if source is None:
            raise FileNotFoundError(f"{version} has none of {', '.join(PLATFORMS)}")
        target = dest / version.name
        target.mkdir(exist_ok=True)
        model = target / source.name
        model.unlink(missing_ok=True)
        try:
            model.symlink_to(source.resolve())
        except OSError:
            shutil.copyfile(source, model)
        shutil.copyfile(PYTHON_MODEL, target / "model.py")
    return dest
