"""An exported model's metadata, read from its archive without torch.

A TorchScript file is a zip archive; ``torch.jit.save`` stores each ``_extra_files`` entry as
``<archive name>/extra/<file>``, so ``motionlift.json`` (``export.py``) can be read with ``zipfile``. The gateway,
which loads no torch, reads it to size its model processes before any of them starts (``cpus.layout``).
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

META_FILE = "motionlift.json"
_MAX_META_BYTES = 1 << 20  # the metadata is a few KiB; a larger entry is not ours


def peek_meta(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``motionlift.json`` object of the model file at ``path``, or ``None`` when it cannot be read that way
    (no such file, not a zip archive, no such entry, not a JSON object): loading the file says what is wrong."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [i for i in archive.infolist() if i.filename.endswith(f"/extra/{META_FILE}")]
            if len(names) != 1 or names[0].file_size > _MAX_META_BYTES:
                return None
            meta = json.loads(archive.read(names[0]))
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError, NotImplementedError):
        return None
    return meta if isinstance(meta, dict) else None


def peek_params(path: str | os.PathLike[str]) -> int | None:
    """The parameter count the metadata of ``path`` states, or ``None`` (``peek_meta``)."""
    meta = peek_meta(path)
    params = None if meta is None else meta.get("params")
    return params if isinstance(params, int) and not isinstance(params, bool) and params > 0 else None
