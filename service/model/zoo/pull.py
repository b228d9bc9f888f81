"""Pulling one catalogue entry: find or fetch its file, check its SHA-256, export it, record it in the registry."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service.model.zoo import checksum, fetch, hub
from service.model.zoo.catalogue import Entry, Hosts, Hub
from service.model.zoo.registry import Cache


@dataclass(frozen=True)
class Pulled:
    """What a pull did: the checkpoint used (``cached``: a file already in the cache's downloads, e.g. put there by
    hand), its SHA-256 and where that value is from, and the exported model."""

    name: str
    checkpoint: Path
    sha256: str
    origin: str
    model: Path
    cached: bool


def pull(
    entry: Entry,
    cache: Cache,
    hosts: Hosts,
    *,
    pinned: str | None = None,
    hf_cache: Path | None = None,
    progress: bool = True,
    on_wait: Callable[[], None] | None = None,
) -> Pulled:
    """Fetch ``entry``'s checkpoint (or take the file already at ``cache.download(...)``, e.g. one fetched by hand),
    check its SHA-256 (``checksum``), export it as TorchScript to ``cache.model(name)`` with its card, and record
    it in the registry.

    Raises ``fetch.Unreachable`` (offline), ``fetch.Refused`` / ``fetch.Interrupted`` (download failures),
    ``checksum.Mismatch`` (the file is removed, nothing is exported or recorded), and ``ValueError`` /
    ``FileNotFoundError`` when the file is no checkpoint of ``entry.config``.

    The whole pull holds ``entry``'s lock in the cache (``Cache.lock``): a second pull of the same name, from
    another process, waits for this one (``on_wait`` is told) and then finds its file.
    """
    with cache.lock(entry.name, on_wait):
        return _pull(entry, cache, hosts, pinned, hf_cache, progress)


def _pull(
    entry: Entry, cache: Cache, hosts: Hosts, pinned: str | None, hf_cache: Path | None, progress: bool
) -> Pulled:
    url = hosts.url(entry.source)
    want = checksum.expected(entry, url, pinned, cache.records().get(entry.name))
    cached = cache.download(entry.name, entry.source.file_name).is_file()
    path = _local_or_fetched(entry, cache, hosts, hf_cache, progress)
    try:
        sha256 = checksum.check(path, want)
    except checksum.Mismatch:
        _discard(path, fetched_by_hub=isinstance(entry.source, Hub) and not cached)
        raise
    origin = want.origin if want.sha256 is not None else f"{checksum.FIRST_USE}: no published value, recorded now"
    model = cache.model(entry.name)
    _export(entry, path, sha256, origin, url, cache)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    cache.record(
        entry.name,
        {"model": str(model), "checkpoint": str(path), "source": url, "sha256": sha256, "sha256_from": origin,
         "config": entry.config, "card": str(cache.card(entry.name)), "pulled": when},
    )  # fmt: skip
    return Pulled(entry.name, path, sha256, origin, model, cached)


def _local_or_fetched(entry: Entry, cache: Cache, hosts: Hosts, hf_cache: Path | None, progress: bool) -> Path:
    manual = cache.download(entry.name, entry.source.file_name)
    if manual.is_file():
        return manual
    if isinstance(entry.source, Hub):
        return hub.download(entry.source, hosts.hf_endpoint, hf_cache)
    return fetch.download(hosts.url(entry.source), manual, progress=progress)


def _discard(path: Path, *, fetched_by_hub: bool) -> None:
    if fetched_by_hub:
        hub.discard(path)
    else:
        path.unlink(missing_ok=True)


def _export(entry: Entry, checkpoint: Path, sha256: str, origin: str, url: str, cache: Cache) -> None:
    from service.model.command import export_model

    card = cache.card(entry.name)
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text(card_text(entry, url, sha256, origin), encoding="utf-8")
    export_model(
        entry.config,
        checkpoint,
        cache.model(entry.name),
        card=str(card),
        weights=f"{entry.name}: {url} (SHA-256 {sha256})",
    )


def card_text(entry: Entry, url: str, sha256: str, origin: str) -> str:
    """The model card written beside a pulled model: what the weights are and on what terms."""
    return (
        f"# {entry.name}\n\n{entry.title}.\n\n"
        f"- Source: {url}\n"
        f"- SHA-256: {sha256} ({origin})\n"
        f"- DSTformer config: {entry.config}\n"
        f"- Licence: {entry.licence}.\n"
        f"- Published accuracy: {entry.accuracy}.\n\n"
        "Exported by `motionlift pull`; the weights are the publisher's, unchanged.\n"
    )
