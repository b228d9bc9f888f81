"""TorchScript export of a DSTformer with a JSON metadata record; loading it back without the Python class.

The metadata lives inside the TorchScript archive as the extra file ``motionlift.json`` (``torch.jit.save``
``_extra_files``), so a model file is self-describing: config, hyperparameters, window, provenance of the
weights.
"""

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from service.model.checkpoint import count_parameters
from service.model.dstformer import DSTformer
from service.model.files import write_atomically
from service.model.peek import META_FILE
from service.model.repository import write_production_config


@contextlib.contextmanager
def _torchscript_deprecation_silenced() -> Iterator[None]:
    # torch >= 2.5 documents TorchScript as deprecated and torch 2.13 warns on every torch.jit.script / save /
    # load (and says it is unsupported on Python 3.14+). It still works on 3.11 and is the format chosen for
    # serving, so only those specific DeprecationWarnings are silenced here. Note: warnings filters are
    # process-wide state.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        yield


def model_meta(
    config_name: str,
    hparams: dict[str, Any],
    model: torch.nn.Module,
    *,
    window: int,
    trained: bool,
    weights: str,
    card: str | None = None,
) -> dict[str, Any]:
    """The metadata record stored with an exported model (JSON-serialisable if ``hparams`` is)."""
    return {
        "name": "dstformer",
        "config": config_name,
        "hyperparams": dict(hparams),
        "params": count_parameters(model),
        "window": window,
        "trained": trained,
        "weights": weights,
        "card": card,
        "precision": "fp32",
        "torch": torch.__version__,
    }


def script(model: DSTformer) -> torch.jit.ScriptModule:
    """``torch.jit.script`` of ``model`` in eval mode: one module for any window length and batch size."""
    model.eval()
    with _torchscript_deprecation_silenced():
        scripted: torch.jit.ScriptModule = torch.jit.script(model)
    return scripted


def export_torchscript(model: DSTformer, out: Path, meta: dict[str, Any]) -> None:
    """Script ``model`` (``torch.jit.script``, so the file accepts any window length 1..maxlen and any batch
    size) and save it to ``out`` with ``meta`` as the extra file ``motionlift.json``. When ``out`` is
    ``<repo>/<model>/<version>/model.pt`` (Triton's layout), ``<repo>/<model>/config.pbtxt`` is written too.

    Parent directories are created; the file is written to a temporary name in the same directory and renamed
    into place, so readers never see a partial file. The model is scripted in eval mode and left in eval mode.
    Raises ``TypeError`` if ``meta`` is not JSON-serialisable (nothing is written then) and ``OSError`` on I/O
    failure.
    """
    meta_json = json.dumps(meta, sort_keys=True)
    scripted = script(model)
    out = Path(out)

    def save(tmp: str) -> None:
        with _torchscript_deprecation_silenced():
            torch.jit.save(scripted, tmp, _extra_files={META_FILE: meta_json})

    write_atomically(out, save)
    # In a Triton repository layout (<repo>/<model>/<version>/model.pt) the model's config.pbtxt goes with it.
    write_production_config(out, meta)


def load_torchscript(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an exported model onto ``device`` in eval mode, with its metadata.

    Raises ``FileNotFoundError`` if the file is missing and ``ValueError`` if it is not a TorchScript archive
    or lacks valid ``motionlift.json`` metadata.
    """
    module, meta = _load(path, device)
    module.eval()
    return module, meta


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of an exported model (errors as ``load_torchscript``)."""
    return _load(path, "cpu")[1]


def _load(path: str | os.PathLike[str], device: str | torch.device) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {os.fspath(path)}")
    extra = {META_FILE: ""}
    try:
        with _torchscript_deprecation_silenced():
            module = torch.jit.load(os.fspath(path), map_location=device, _extra_files=extra)  # type: ignore[no-untyped-call]
    except RuntimeError as exc:
        raise ValueError(f"{os.fspath(path)!r} is not a TorchScript model file: {exc}") from exc
    raw = extra[META_FILE]
    if not raw:
        raise ValueError(f"{os.fspath(path)!r} has no {META_FILE} metadata (not exported by MotionLift?)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{os.fspath(path)!r}: invalid {META_FILE}: {exc}") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{os.fspath(path)!r}: {META_FILE} must hold a JSON object")
    return module, meta
