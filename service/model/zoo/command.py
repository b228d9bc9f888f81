"""``motionlift pull NAME``: official DSTformer weights by name, checked, exported and registered, so that
``motionlift serve --model NAME`` serves them; ``motionlift pull --list`` shows the names."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

from service.model.zoo.catalogue import CATALOGUE, HF_ENDPOINT, ZOO_URL, Entry, Hosts, Hub
from service.model.zoo.registry import CACHE_ENV, Cache, cache_root

ZOO_ENV = "MOTIONLIFT_ZOO_URL"


def add_arguments(pull: argparse.ArgumentParser) -> None:
    pull.add_argument("name", nargs="?", choices=sorted(CATALOGUE), metavar="NAME", help="a name of --list")
    pull.add_argument("--list", action="store_true", help="the names: sources, sizes, licences, published accuracy")
    pull.add_argument("--sha256", default=None, help="pin the file's SHA-256 (64 hex digits): any other is refused")
    pull.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"the cache (downloads, exported models, registry) [env {CACHE_ENV}; default $XDG_CACHE_HOME/motionlift]",
    )
    pull.add_argument(
        "--hf-cache", type=Path, default=None, help="huggingface_hub's cache [default: its own, HF_HOME/HF_HUB_CACHE]"
    )
    pull.add_argument(
        "--hf-endpoint", default=None, help=f"Hugging Face Hub endpoint or mirror [env HF_ENDPOINT; {HF_ENDPOINT}]"
    )
    pull.add_argument("--zoo-url", default=None, help=f"model zoo base URL or mirror [env {ZOO_ENV}; {ZOO_URL}]")


def run(args: argparse.Namespace) -> int:
    cache = Cache(cache_root(args.cache_dir, os.environ))
    if args.list:
        try:
            print(listing(CATALOGUE.values(), cache))
        except ValueError as exc:  # a registry that cannot be read
            print(f"motionlift pull: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.name is None:
        print("motionlift pull: name a checkpoint (`motionlift pull --list` shows them)", file=sys.stderr)
        return 2
    missing = _missing_packages()
    if missing:
        print(f"motionlift pull: needs {missing}: pip install 'motionlift[pull]'", file=sys.stderr)
        return 2
    from service.model.zoo import checksum, fetch
    from service.model.zoo.pull import pull

    entry = CATALOGUE[args.name]
    hosts = Hosts(
        args.hf_endpoint or os.environ.get("HF_ENDPOINT") or HF_ENDPOINT,
        args.zoo_url or os.environ.get(ZOO_ENV) or ZOO_URL,
    )
    try:
        pinned = None if args.sha256 is None else checksum.parse_sha256(args.sha256)
        pulled = pull(entry, cache, hosts, pinned=pinned, hf_cache=args.hf_cache, on_wait=lambda: _waiting(entry.name))
    except fetch.Unreachable as exc:
        print(offline(entry, cache, hosts, exc, _cache_flag(args.cache_dir)), file=sys.stderr)
        return 1
    except (fetch.Refused, fetch.Interrupted, checksum.Mismatch) as exc:
        print(f"motionlift pull: {exc}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as exc:
        print(f"motionlift pull: {exc}", file=sys.stderr)
        return 2
    if pulled.cached:
        print(f"used {pulled.checkpoint} (already in the cache)")
    print(f"{pulled.name}: SHA-256 {pulled.sha256} ({pulled.origin})")
    print(f"exported to {pulled.model}")
    print(f"serve it: motionlift serve --model {pulled.name}" + _cache_flag(args.cache_dir))
    return 0


def _waiting(name: str) -> None:
    print(f"motionlift pull: another pull of {name} is running; waiting for it to finish", file=sys.stderr)


def _missing_packages() -> str:
    """The packages of the `pull` extra that are not installed, named; empty when all are."""
    names = [n for n in ("huggingface_hub", "tqdm", "filelock", "torch") if importlib.util.find_spec(n) is None]
    return ", ".join(names)


def _cache_flag(cache_dir: Path | None) -> str:
    return f" --cache-dir {cache_dir}" if cache_dir is not None else ""


def offline(entry: Entry, cache: Cache, hosts: Hosts, exc: OSError, flags: str = "") -> str:
    """What to do without a connection: where to download the file from, where to put it, how to go on
    (``flags``: the options to repeat, e.g. `` --cache-dir DIR``)."""
    url = hosts.url(entry.source)
    place = cache.download(entry.name, entry.source.file_name)
    sha = entry.sha256 or (f"starting {entry.sha256_prefix}" if entry.sha256_prefix else "not published")
    return (
        f"motionlift pull: {exc}\n"
        f"Download the file on a machine with network access:\n  {url}\n"
        f"  (expected SHA-256: {sha})\n"
        f"put it here, under this exact name:\n  {place}\n"
        f"and run `motionlift pull {entry.name}{flags}` again: it checks the file, exports it and registers the name.\n"
        f"Or export it by hand and serve the file:\n"
        f"  motionlift export --config {entry.config} --checkpoint {place} --out {cache.model(entry.name)}\n"
        f"  motionlift serve --model {cache.model(entry.name)}"
    )


def listing(entries: Iterable[Entry], cache: Cache) -> str:
    """``--list``: each name with its source, size, licence, published accuracy and SHA-256, and whether pulled."""
    records = cache.records()
    blocks = []
    for entry in entries:
        where = f"pulled: {records[entry.name]['model']}" if entry.name in records else "not pulled"
        source = entry.source
        origin = (
            f"{source.repo_id} (Hugging Face) {source.filename}" if isinstance(source, Hub) else source.url(ZOO_URL)
        )
        lines = [
            ("config", entry.config),
            ("source", origin + (f" ({entry.source_note})" if entry.source_note else "")),
            ("size", entry.size),
            ("licence", entry.licence),
            ("terms", entry.terms),
            ("accuracy", entry.accuracy),
            ("sha256", f"{entry.sha256} ({entry.sha256_note})" if entry.sha256 else entry.sha256_note),
        ]
        text = [_wrapped(entry.title, 2)] + [_wrapped(f"{label + ':':<10}{value}", 12) for label, value in lines]
        blocks.append(f"{entry.name}  [{where}]\n" + "\n".join(text))
    return "\n\n".join(blocks)


def _wrapped(line: str, indent: int) -> str:
    return textwrap.fill(line, width=118, initial_indent="  ", subsequent_indent=" " * indent, break_on_hyphens=False)
