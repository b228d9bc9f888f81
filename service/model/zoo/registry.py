"""The cache of ``motionlift pull`` and its registry of pulled names; imports no torch (``serve`` resolves
``--model NAME`` through it).

Layout under the cache root (``--cache-dir``, else ``$MOTIONLIFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/motionlift``,
else ``~/.cache/motionlift``)::

    downloads/NAME/FILE        model-zoo downloads (FILE.part while incomplete), and where a file fetched by hand
                               goes (Hugging Face files go to huggingface_hub's own cache)
    models/NAME/1/model.pt     the exported model; models/ is a Triton model repository (config.pbtxt beside 1/)
    models/NAME/CARD.md        what the weights are: source, SHA-256, licence, published accuracy
    registry.json              {"models": {NAME: {"model": path, "sha256": hex, "sha256_from": ..., ...}}}
    locks/NAME.lock            held by the pull of NAME (a second pull of the same name waits for the first)
    locks/registry.lock        held while the registry is rewritten (pulls of different names run side by side)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CACHE_ENV = "MOTIONLIFT_CACHE_DIR"


def cache_root(explicit: Path | None, environ: Mapping[str, str]) -> Path:
    """The cache root: ``explicit``, else ``$MOTIONLIFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/motionlift``, else
    ``~/.cache/motionlift`` (the XDG default, as huggingface_hub's own cache uses)."""
    if explicit is not None:
        return explicit.expanduser()
    if environ.get(CACHE_ENV):
        return Path(environ[CACHE_ENV]).expanduser()
    xdg = environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path(environ.get("HOME", "~")).expanduser() / ".cache"
    return base / "motionlift"


class Cache:
    """Paths under a cache root, and its registry. Constructing one touches no file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.registry = root / "registry.json"

    def download(self, name: str, file_name: str) -> Path:
        return self.root / "downloads" / name / file_name

    def model(self, name: str) -> Path:
        return self.root / "models" / name / "1" / "model.pt"

    def card(self, name: str) -> Path:
        return self.root / "models" / name / "CARD.md"

    @contextmanager
    def lock(self, name: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold ``name``'s pull lock (a file lock, across processes): two pulls of one name would append to one
        ``.part`` file and export over each other. ``on_wait`` is called once if another pull holds it, before
        waiting for it."""
        with _locked(self.root / "locks" / f"{name}.lock", on_wait):
            yield

    def records(self) -> dict[str, dict[str, Any]]:
        """The registry's records by name; empty when there is no registry yet. Raises ``ValueError`` naming the
        file when it is not a registry."""
        try:
            raw = json.loads(self.registry.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read the registry {self.registry}: {exc}") from exc
        models = raw.get("models") if isinstance(raw, dict) else None
        if not isinstance(models, dict) or not all(isinstance(r, dict) for r in models.values()):
            raise ValueError(f"{self.registry} is not a registry: expected {{'models': {{NAME: {{...}}}}}}")
        return models

    def record(self, name: str, record: Mapping[str, Any]) -> None:
        """Add or replace ``name``'s record; the file is replaced atomically (a reader never sees half of it), and
        read, changed and written under the registry's lock, so pulls of two names never lose one's record."""
        with _locked(self.root / "locks" / "registry.lock"):
            models = self.records()
            models[name] = dict(record)
            tmp = self.registry.with_name(f".{self.registry.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"models": models}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(tmp, self.registry)


@contextmanager
def _locked(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    from filelock import FileLock, Timeout  # a dependency of torch and huggingface_hub; only pulls take locks

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait()
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def resolve_model(model: Path, cache: Cache, known: Collection[str]) -> Path:
    """The model file ``serve --model`` means: an existing file as it is; else a name pulled into ``cache`` (its
    exported file); else ``model`` unchanged, so a missing path is reported as such by the server's preflight.

    Raises ``ValueError`` when ``model`` is one of the ``known`` names but not pulled yet, when a pulled name's
    file has gone, or when the registry cannot be read; the message says what to run.
    """
    if model.is_file() or model.parent != Path("."):
        return model
    name = model.name
    record = cache.records().get(name)
    if record is None:
        if name in known:
            raise ValueError(f"{name!r} is not pulled yet into {cache.root}: run `motionlift pull {name}` first")
        return model
    path = Path(str(record.get("model", "")))
    if not path.is_file():
        raise ValueError(f"the model pulled as {name!r} ({path}) is missing: run `motionlift pull {name}` again")
    return path
