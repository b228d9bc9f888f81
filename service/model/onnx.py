"""ONNX export of a DSTformer (or of a loaded TorchScript module) with the model's metadata; reading it back.

The graph takes ``keypoints__0`` ``[batch, frames, 17, 3]`` float32 and gives ``joints3d__0`` of the same shape, with
the batch and frame axes dynamic: the tensor names of the TorchScript model's Triton config, so both formats have
the same interface (``service/model/repository.py``). The ``motionlift.json`` metadata is stored in the model's
``metadata_props`` under ``motionlift``, so an ONNX file is self-describing like a TorchScript one.

Exporter: torch's TorchScript-based exporter (``dynamo=False``), opset 17. Both exporters work offline; this one was
chosen because it needs nothing beyond torch and onnx (``dynamo=True`` needs onnxscript and onnx-ir), exports the
full model in seconds (the dynamo exporter took about 30 s for the small config on this 2-core machine) and writes
IR version 8, which every Triton release with opset 17 reads (Triton 24.10 ships ONNX Runtime 1.19.2). Torch
documents it as deprecated; torch is pinned (2.13.0), and ``dynamo=True`` is the path when that changes. An eager
module is traced with a window of at most ``FUSED_MIN_LENGTH`` frames, so the graph has no branches: attention is
matmul + softmax at every length (the same function as the fused kernel longer windows use in TorchScript, within
fp32 rounding), which suits TensorRT. A TorchScript module (``motionlift bench onnx``) is exported as scripted, its
length branch becoming an ONNX ``If``.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from service.model.dstformer import FUSED_MIN_LENGTH
from service.model.files import write_atomically
from service.model.peek import META_FILE
from service.model.repository import CHANNELS, INPUT, JOINTS, META_PARAM, OUTPUT, write_production_config

OPSET = 17  # LayerNormalization is an ONNX op from 17 on; TensorRT and ONNX Runtime 1.14+ run it
AXES = {INPUT: {0: "batch", 1: "frames"}, OUTPUT: {0: "batch", 1: "frames"}}


@contextlib.contextmanager
def _exporter_warnings_silenced() -> Iterator[None]:
    # The legacy exporter warns that it is deprecated (see the module docstring for why it is used) and, for a
    # TorchScript module, that a scripted forward has no Python signature (its one argument needs none); tracing
    # warns at the forward's shape checks (Python bools from shapes), which only guard eager callers.
    with warnings.catch_warnings():
        for message in (r".*legacy TorchScript-based ONNX export", r"The feature will be removed"):
            warnings.filterwarnings("ignore", message=message, category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"no signature found for <torch\.ScriptMethod", category=UserWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # type: ignore[attr-defined]
        yield


def versions() -> dict[str, str]:
    """The exporting versions, recorded in the Triton config's parameters (needs onnx)."""
    import onnx

    return {"torch_version": torch.__version__, "onnx_version": onnx.__version__, "onnx_opset": str(OPSET)}


def export_onnx(module: torch.nn.Module, out: Path, meta: dict[str, Any] | None = None, *, frames: int = 27) -> None:
    """Write ``module`` (an eager DSTformer, or a TorchScript module) to ``out`` as ONNX with dynamic batch and frame
    axes, and ``meta`` (JSON) in its ``metadata_props``. ``frames`` is the window length of the example input an
    eager module is traced with (capped at ``FUSED_MIN_LENGTH``). When ``out`` is
    ``<repo>/<model>/<version>/model.onnx`` (Triton's layout) and ``meta`` is given, ``<repo>/<model>/config.pbtxt``
    for the onnxruntime backend is written too.

    The model must compute in float32 (``ValueError`` otherwise: TensorRT's fp16 is the config's, not the file's).
    Written to a temporary name and renamed into place. Raises ``TypeError`` if ``meta`` is not JSON-serialisable
    (nothing is written then), ``ImportError`` without the ``onnx`` package, and ``OSError`` on I/O failure.
    """
    import onnx

    meta_json = json.dumps(meta, sort_keys=True) if meta is not None else None
    dtypes = {p.dtype for p in module.parameters()}
    if dtypes - {torch.float32}:
        raise ValueError(f"ONNX export needs float32 weights, got {', '.join(sorted(map(str, dtypes)))}")
    module.eval()
    example = torch.zeros(2, max(1, min(frames, FUSED_MIN_LENGTH)), JOINTS, CHANNELS)

    def write(tmp: str) -> None:
        with _exporter_warnings_silenced():
            torch.onnx.export(module, (example,), tmp, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes=AXES, opset_version=OPSET, dynamo=False)  # fmt: skip
        if meta_json is not None:
            model = onnx.load(tmp)
            onnx.helper.set_model_props(model, {META_PARAM: meta_json})
            onnx.checker.check_model(model)
            onnx.save(model, tmp)

    out = Path(out)
    write_atomically(out, write)
    if meta is not None:
        write_production_config(out, meta, versions=versions())


def read_onnx_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of an ONNX model written by ``export_onnx`` (needs onnx).

    Raises ``FileNotFoundError`` if the file is missing and ``ValueError`` if it is not an ONNX model or lacks valid
    ``motionlift`` metadata.
    """
    import onnx
    from google.protobuf.message import DecodeError

    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {os.fspath(path)}")
    try:
        props = {p.key: p.value for p in onnx.load(os.fspath(path), load_external_data=False).metadata_props}
    except DecodeError as exc:
        raise ValueError(f"{os.fspath(path)!r} is not an ONNX model file: {exc}") from exc
    if META_PARAM not in props:
        raise ValueError(f"{os.fspath(path)!r} has no {META_PARAM!r} metadata (not exported by MotionLift?)")
    try:
        meta = json.loads(props[META_PARAM])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{os.fspath(path)!r}: invalid {META_FILE} metadata: {exc}") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{os.fspath(path)!r}: the {META_PARAM!r} metadata must hold a JSON object")
    return meta
