"""Triton model repository files for the exported DSTformer: the production ``config.pbtxt`` and its CPU twin.

Layout (Triton "Model Repository" docs): ``<repo>/<model>/config.pbtxt`` and ``<repo>/<model>/<version>/model.pt``.

* ``production_config`` writes the config NVIDIA's tritonserver image serves on a GPU: platform
  ``pytorch_libtorch``, ``instance_group`` KIND_GPU, a variable frame count, warm-up, and the model's
  ``motionlift.json`` metadata as the model parameter ``motionlift`` so a gateway without torch can describe the
  model (``ModelInfo``) from ``get_model_config`` alone.
* ``write_cpu_repository`` derives from a production config a repository that any Triton build serves on a CPU
  (the python backend, e.g. the server bundled in the ``nvidia-pytriton`` wheel): the same name, tensors, dims,
  batching and metadata; only the backend, the instance kind and the backend-specific parameters change. Its
  ``model.py`` (``service/triton_python_model.py``) ``torch.jit.load``s the same ``model.pt``.

Batching, and why it happens once: the gateway's batcher already groups windows of equal length into batches
(``--max-batch-size``, ``--max-queue-delay-ms``). Triton's dynamic batcher is enabled with
``max_queue_delay_microseconds: 0``: it never *waits* for more requests (that delay would be paid a second time),
it only merges requests that are already queued while the model instance is busy -- batches from several gateway
replicas, or from direct clients. ``max_batch_size`` bounds such a merged batch. Requests with different frame
counts are never merged: Triton batches only requests whose shapes are equal (Triton docs, "Dynamic Batcher").

The ``<name>__<index>`` tensor names are the pytorch_libtorch backend's convention for mapping config tensors to
the TorchScript ``forward`` arguments and outputs (triton-inference-server/pytorch_backend README, "Configuration").
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INPUT = "keypoints__0"  # [batch, frames, 17, 3]: normalised x, y, score (H36M-17)
OUTPUT = "joints3d__0"  # [batch, frames, 17, 3]: x, y, z
JOINTS, CHANNELS = 17, 3
META_PARAM = "motionlift"  # model parameter carrying the export's motionlift.json
DEFAULT_MAX_BATCH = 32  # windows per Triton execution: headroom over several gateways' batches (default 8 each)
PYTHON_MODEL = Path(__file__).with_name("python_model.py")


@dataclass(frozen=True)
class TensorSpec:
    """The served model's interface as a config states it (dims without the batch dimension)."""

    input: str
    output: str
    dims: tuple[int, ...]
    max_batch_size: int


def _quote(text: str) -> str:
    """A protobuf text-format string literal (C-style escapes)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def production_config(meta: dict[str, Any], *, name: str = "dstformer", max_batch_size: int = DEFAULT_MAX_BATCH) -> str:
    """The ``config.pbtxt`` text for ``pytorch_libtorch`` on GPU of a model exported with metadata ``meta``.

    Raises ``KeyError`` if ``meta`` has no ``window`` and ``TypeError`` if it is not JSON-serialisable.
    """
    window = int(meta["window"])
    meta_json = json.dumps(meta, sort_keys=True)
    return f"""# Written by `motionlift export` (service/triton_repo.py); regenerate rather than edit.
# Served by NVIDIA's tritonserver image (pytorch_libtorch backend) on a GPU; the CPU test twin is derived from it.
name: "{name}"
platform: "pytorch_libtorch"
max_batch_size: {max_batch_size}
input [
  {{
    name: "{INPUT}"
    data_type: TYPE_FP32
    dims: [ -1, {JOINTS}, {CHANNELS} ]
  }}
]
output [
  {{
    name: "{OUTPUT}"
    data_type: TYPE_FP32
    dims: [ -1, {JOINTS}, {CHANNELS} ]
  }}
]
instance_group [
  {{
    count: 1
    kind: KIND_GPU
  }}
]
# The gateway batches; Triton only merges requests already waiting and never delays one (see triton_repo.py).
dynamic_batching {{
  max_queue_delay_microseconds: 0
}}
# TorchScript's profiling executor specialises on its first calls: warm up the full window before serving.
model_warmup [
  {{
    name: "full_window"
    batch_size: 1
    count: 3
    inputs {{
      key: "{INPUT}"
      value: {{
        data_type: TYPE_FP32
        dims: [ {window}, {JOINTS}, {CHANNELS} ]
        zero_data: true
      }}
    }}
  }}
]
parameters {{
  key: "INFERENCE_MODE"
  value: {{ string_value: "true" }}
}}
parameters {{
  key: "{META_PARAM}"
  value: {{ string_value: {_quote(meta_json)} }}
}}
"""


def repository_model_dir(model_file: Path) -> Path | None:
    """``<repo>/<model>`` if ``model_file`` sits in a Triton layout (``<repo>/<model>/<digits>/model.pt``)."""
    if model_file.name == "model.pt" and model_file.parent.name.isdigit():
        return model_file.parent.parent
    return None


def write_production_config(model_file: Path, meta: dict[str, Any]) -> Path | None:
    """Write ``config.pbtxt`` beside the version folder of ``model_file`` when it is in a Triton layout.

    Returns the path written, or None when ``model_file`` is not in a repository layout. Written to a temporary
    name and renamed, so Triton never reads half a file. Raises ``OSError`` on I/O failure.
    """
    model_dir = repository_model_dir(model_file)
    if model_dir is None:
        return None
    out = model_dir / "config.pbtxt"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(production_config(meta, name=model_dir.name))
    os.replace(tmp, out)
    return out


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
    metadata; ``backend: "python"``, ``instance_group`` KIND_CPU, and no libtorch-only parameters."""
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    config.CopyFrom(production)
    config.platform = ""
    config.backend = "python"
    del config.instance_group[:]
    config.instance_group.add(count=instances, kind=model_config_pb2.ModelInstanceGroup.KIND_CPU)
    if "INFERENCE_MODE" in config.parameters:  # a pytorch_libtorch option; the python model uses inference_mode
        del config.parameters["INFERENCE_MODE"]
    return config


def write_cpu_repository(source_model_dir: Path, dest_repo: Path, *, instances: int = 1) -> Path:
    """Make ``dest_repo/<model>/`` a python-backend twin of ``source_model_dir`` (a production model folder).

    Every version folder's ``model.pt`` is linked (copied where links fail) and gets the generated ``model.py``.
    Returns the new model folder. Raises ``FileNotFoundError`` if the source has no ``config.pbtxt``, and
    ``ValueError`` if that config is not a MotionLift one.
    """
    from google.protobuf import text_format

    production = parse_config((source_model_dir / "config.pbtxt").read_text())
    tensor_spec(production)
    config_meta(production)
    dest = dest_repo / source_model_dir.name
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.pbtxt").write_text(text_format.MessageToString(cpu_config(production, instances=instances)))
    for version in sorted(p for p in source_model_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        target = dest / version.name
        target.mkdir(exist_ok=True)
        model = target / "model.pt"
        model.unlink(missing_ok=True)
        try:
            model.symlink_to((version / "model.pt").resolve())
        except OSError:
            shutil.copyfile(version / "model.pt", model)
        shutil.copyfile(PYTHON_MODEL, target / "model.py")
    return dest
