"""The Triton model repository files ``motionlift export`` writes beside the model: the production
``config.pbtxt`` that NVIDIA's tritonserver image serves on a GPU.

Layout (Triton "Model Repository" docs): ``<repo>/<model>/config.pbtxt`` and ``<repo>/<model>/<version>/model.pt``
(TorchScript, platform ``pytorch_libtorch``) or ``.../<version>/model.onnx`` (ONNX, platform ``onnxruntime_onnx``
with TensorRT in fp16 as its GPU accelerator). The config: ``instance_group`` KIND_GPU, a variable frame count,
warm-up, and the model's ``motionlift.json`` metadata as the model parameter ``motionlift`` so a gateway without torch
can describe the model (``ModelInfo``) from ``get_model_config`` alone. Both formats have the same tensor names and
dims, so the gateway calls either with no change. ``service.backends.triton.repo`` reads it and derives the CPU twin
the tests serve.

Batching, and why it happens once: the gateway's batcher already groups windows of equal length into batches
(``--max-batch-size``, ``--max-queue-delay-ms``). Triton's dynamic batcher is enabled with
``max_queue_delay_microseconds: 0``: it never *waits* for more requests (that delay would be paid a second time),
it only merges requests that are already queued while the model instance is busy -- batches from several gateway
replicas, or from direct clients. ``max_batch_size`` bounds such a merged batch. Requests with different frame
counts are never merged: Triton batches only requests whose shapes are equal (Triton docs, "Dynamic Batcher").

The ``<name>__<index>`` tensor names are the pytorch_libtorch backend's convention for mapping config tensors to
the TorchScript ``forward`` arguments and outputs (triton-inference-server/pytorch_backend README, "Configuration").
The ONNX export names its graph's input and output the same (the onnxruntime backend matches config tensors to graph
tensors by name).

TensorRT (``optimization.execution_accelerators``; keys from triton-inference-server/onnxruntime_backend README,
"ONNX Runtime with TensorRT optimization"): ``precision_mode`` FP16, an engine cache, and one explicit optimisation
profile covering every shape the gateway sends (1..max_batch_size windows of 1..window frames), so TensorRT builds
one engine at warm-up instead of rebuilding whenever a new shape exceeds the range seen so far. The
``trt_profile_*`` keys came to the backend after Triton 24.03 (onnxruntime_backend PR 237; 24.03 rejects them): with
an older Triton the model fails to load with "unknown parameter".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

INPUT = "keypoints__0"  # [batch, frames, 17, 3]: normalised x, y, score (H36M-17)
OUTPUT = "joints3d__0"  # [batch, frames, 17, 3]: x, y, z
JOINTS, CHANNELS = 17, 3
META_PARAM = "motionlift"  # model parameter carrying the export's motionlift.json
DEFAULT_MAX_BATCH = 32  # windows per Triton execution: headroom over several gateways' batches (default 8 each)
# Triton's default model file name of each platform (the file ``motionlift export`` writes decides the platform).
PLATFORMS = {"model.pt": "pytorch_libtorch", "model.onnx": "onnxruntime_onnx"}
# Where TensorRT keeps built engines inside the Triton container (the model repository is mounted read-only); mount
# a volume there to keep them across container restarts (an engine build takes a while).
TRT_CACHE = "/tmp/motionlift-tensorrt"
# TensorRT tunes its kernels for this batch (windows) and the full window; any shape within the profile runs.
TRT_OPT_BATCH = 8


def _quote(text: str) -> str:
    """A protobuf text-format string literal (C-style escapes)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def production_config(
    meta: dict[str, Any],
    *,
    name: str = "dstformer",
    max_batch_size: int = DEFAULT_MAX_BATCH,
    platform: str = "pytorch_libtorch",
    versions: dict[str, str] | None = None,
) -> str:
    """The ``config.pbtxt`` text for ``platform`` (``pytorch_libtorch`` or ``onnxruntime_onnx``, which adds the
    TensorRT fp16 accelerator) on GPU of a model exported with metadata ``meta``; ``versions`` (e.g. the exporting
    torch and onnx versions) become string parameters.

    Raises ``KeyError`` if ``meta`` has no ``window`` or ``platform`` is neither, and ``TypeError`` if ``meta`` is not
    JSON-serialisable.
    """
    window = int(meta["window"])
    meta_json = json.dumps(meta, sort_keys=True)
    served, warmup_note, optimization, backend_parameters = _platform_parts(platform, window, max_batch_size)
    backend_parameters += "".join(_string_parameter(k, v) for k, v in sorted((versions or {}).items()))
    return f"""# Written by `motionlift export` (service/model/repository.py); regenerate rather than edit.
# Served by NVIDIA's tritonserver image ({served}) on a GPU; the CPU test twin is derived from it.
name: "{name}"
platform: "{platform}"
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
# The gateway batches; Triton only merges requests already waiting and never delays one (model/repository.py).
dynamic_batching {{
  max_queue_delay_microseconds: 0
}}
{optimization}# {warmup_note}
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
{backend_parameters}{_string_parameter(META_PARAM, meta_json)}"""


def _string_parameter(key: str, value: str) -> str:
    return f"""parameters {{
  key: {_quote(key)}
  value: {{ string_value: {_quote(value)} }}
}}
"""


def _platform_parts(platform: str, window: int, max_batch_size: int) -> tuple[str, str, str, str]:
    """What differs between the platforms: the header's backend, the warm-up's reason, the optimization block and
    the backend's own parameters. ``KeyError`` for an unknown platform."""
    if platform == "pytorch_libtorch":
        note = "TorchScript's profiling executor specialises on its first calls: warm up the full window before"
        return "pytorch_libtorch backend", f"{note} serving.", "", _string_parameter("INFERENCE_MODE", "true")
    if platform != "onnxruntime_onnx":
        raise KeyError(f"unknown Triton platform {platform!r}; expected one of {', '.join(PLATFORMS.values())}")
    dims = f"{JOINTS}x{CHANNELS}"
    trt = {
        "precision_mode": "FP16",
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": TRT_CACHE,
        "trt_profile_min_shapes": f"{INPUT}:1x1x{dims}",
        "trt_profile_opt_shapes": f"{INPUT}:{min(TRT_OPT_BATCH, max_batch_size)}x{window}x{dims}",
        "trt_profile_max_shapes": f"{INPUT}:{max_batch_size}x{window}x{dims}",
    }
    lines = "".join(f"        parameters {{ key: {_quote(k)} value: {_quote(v)} }}\n" for k, v in trt.items())
    optimization = f"""# ONNX Runtime runs the graph with TensorRT in fp16 (README "ONNX and TensorRT"), one engine
# for every shape the gateway sends: 1..{max_batch_size} windows of 1..{window} frames. Other nodes run on CUDA.
optimization {{
  execution_accelerators {{
    gpu_execution_accelerator [
      {{
        name: "tensorrt"
{lines}      }}
    ]
  }}
}}
"""
    note = "TensorRT builds its engine by the first call at the latest: warm up the full window before serving."
    return "onnxruntime backend", note, optimization, ""


def repository_model_dir(model_file: Path) -> Path | None:
    """``<repo>/<model>`` if ``model_file`` sits in a Triton layout (``<repo>/<model>/<digits>/model.pt`` or
    ``model.onnx``)."""
    if model_file.name in PLATFORMS and model_file.parent.name.isdigit():
        return model_file.parent.parent
    return None


def write_production_config(
    model_file: Path, meta: dict[str, Any], *, versions: dict[str, str] | None = None
) -> Path | None:
    """Write ``config.pbtxt`` beside the version folder of ``model_file`` when it is in a Triton layout, for the
    platform its file name implies (``model.pt``: pytorch_libtorch, ``model.onnx``: onnxruntime_onnx).

    Returns the path written, or None when ``model_file`` is not in a repository layout. Written to a temporary
    name and renamed, so Triton never reads half a file. Raises ``OSError`` on I/O failure.
    """
    model_dir = repository_model_dir(model_file)
    if model_dir is None:
        return None
    out = model_dir / "config.pbtxt"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(production_config(meta, name=model_dir.name, platform=PLATFORMS[model_file.name], versions=versions))
    os.replace(tmp, out)
    return out
