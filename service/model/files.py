"""Writing model files so that readers (a serving process, Triton's model poller) never see half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(out: Path, write: Callable[[str], None]) -> None:
    """Create ``out``'s parent folders, call ``write(tmp)`` for a temporary name in the same folder, make the file
    readable by all (mkstemp creates 0600; a model file is meant to be read by the serving user) and rename it to
    ``out``. On any failure the temporary file is removed and the error propagates; ``out`` is left as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
