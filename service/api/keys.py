"""``motionlift keys create NAME | revoke NAME | list``: the API keys file of ``serve --api-keys``
(``service.core.access``). ``create`` prints the new key once, on stdout, and stores only its SHA-256; a running
service reads the file again within a second, so ``revoke`` needs no restart. The file is ``--api-keys`` or
``MOTIONLIFT_API_KEYS``, the same setting ``serve`` reads.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

from service.core.access import KeyEntry, KeyFile, digest, new_key

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def add_arguments(keys: argparse.ArgumentParser) -> None:
    keys.add_argument("--api-keys", type=Path, default=None, help="the keys file (default: $MOTIONLIFT_API_KEYS)")
    sub = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="make a key for NAME and print it once")
    create.add_argument("name", help="who the key is for (letters, digits, . _ @ -; at most 64)")
    create.add_argument("--frames-per-s", type=float, default=None, help="this key's frames per second (quota)")
    create.add_argument("--streams", type=int, default=None, help="this key's streams open at once (quota)")
    revoke = sub.add_parser("revoke", help="remove NAME's key")
    revoke.add_argument("name")
    sub.add_parser("list", help="names, dates and quotas (never the keys)")


def _fail(message: str) -> int:
    print(f"motionlift keys: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    given = args.api_keys or os.environ.get("MOTIONLIFT_API_KEYS")
    if not given:
        return _fail("say which keys file: --api-keys FILE or MOTIONLIFT_API_KEYS")
    path = Path(given)
    try:
        current = KeyFile.read(path)
    except ValueError as exc:
        return _fail(str(exc))
    names = [k.name for k in current.keys]
    if args.action == "list":
        for k in current.keys:
            quotas = f"frames/s {k.frames_per_s if k.frames_per_s is not None else 'default'}, "
            quotas += f"streams {k.streams if k.streams is not None else 'default'}"
            print(f"{k.name}\tcreated {k.created}\t{quotas}")
        return 0
    if args.action == "revoke":
        if args.name not in names:
            return _fail(f"no key named {args.name!r} in {path}")
        replace(current, keys=tuple(k for k in current.keys if k.name != args.name)).write(path)
        print(f"revoked {args.name!r}; a running service stops taking it within a second", file=sys.stderr)
        return 0
    if not NAME.match(args.name):
        return _fail(f"a key name is letters, digits, . _ @ - (at most 64), got {args.name!r}")
    if args.name in names:
        return _fail(f"{args.name!r} already has a key; revoke it first")
    for value, what in ((args.frames_per_s, "--frames-per-s"), (args.streams, "--streams")):
        if value is not None and value <= 0:
            return _fail(f"{what} must be positive")
    key = new_key()
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    entry = KeyEntry(args.name, digest(key), created, args.frames_per_s, args.streams)
    replace(current, keys=(*current.keys, entry)).write(path)
    print(key)
    print(f"created a key for {args.name!r} in {path}: it is shown only now", file=sys.stderr)
    return 0
