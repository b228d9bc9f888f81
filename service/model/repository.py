"""The Triton model repository files ``motionlift export`` writes beside the model: the production
``config.pbtxt`` that NVIDIA's tritonserver image serves on a GPU.

Layout (Triton "Model Repository" docs): ``<repo>/<model>/config.pbtxt`` and ``<repo>/<model>/<version>/model.pt``.
The config: platform ``pytorch_libtorch``, ``instance_group`` KIND_GPU, a variable frame count, warm-up, and the
model's ``motionlift.json`` metadata as the model parameter ``motionlift`` so a gateway without torch can describe
the model (``ModelInfo``) from ``get_model_config`` alone. ``service.backends.triton.repo`` reads it and derives the
CPU twin the tests serve.

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
from pathlib import Path
from typing import Any

INPUT = "keypoints__0"  # [batch, frames, 17, 3]: normalised x, y, score (H36M-17)
OUTPUT = "joints3d__0"  # [batch, frames, 17, 3]: x, y, z
JOINTS, CHANNELS = 17, 3
META_PARAM = "motionlift"  # model parameter carrying the export's motionlift.json
DEFAULT_MAX_BATCH = 32  # windows per Triton execution: headroom over several gateways' batches (default 8 each)


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
    return f"""# Written by `motionlift export` (service/model/repository.py); regenerate rather than edit.
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
# The gateway batches; Triton only merges requests already waiting and never delays one (model/repository.py).
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
