"""Which SHA-256 a pulled file must have, and the check.

The expected value comes, first found, from: ``--sha256`` (pinned by the user), the catalogue (published or
reported), or the registry's record of an earlier pull of the same source (trust-on-first-use). With none of them
the file's own digest is recorded as trust-on-first-use, and later pulls must match it. A publisher's prefix
(MMPose names files with the first 8 hex digits of their SHA-256) is checked in every case.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.model.zoo.catalogue import Entry

_HEX64 = re.compile(r"[0-9a-f]{64}")
PINNED = "pinned (--sha256)"
CATALOGUE = "catalogue"
FIRST_USE = "trust-on-first-use"


class Mismatch(ValueError):
    """The file's SHA-256 is not the expected one: the file is not used (and is removed by the caller)."""


@dataclass(frozen=True)
class Expected:
    """The SHA-256 a file must have (None: whatever it is, recorded on first use) and where that value is from."""

    sha256: str | None
    origin: str
    prefix: str | None = None


def parse_sha256(text: str) -> str:
    """A SHA-256 as 64 lower-case hex digits; raises ``ValueError`` naming what is wrong."""
    value = text.strip().lower()
    if not _HEX64.fullmatch(value):
        raise ValueError(f"--sha256 must be 64 hex digits, got {text!r}")
    return value


def expected(entry: Entry, url: str, pinned: str | None, record: dict[str, Any] | None) -> Expected:
    """What ``entry``'s file fetched from ``url`` must hash to: ``pinned``, else the catalogue's value, else the
    value ``record`` (the registry's entry for the name) holds for the same URL, else none yet."""
    if pinned is not None:
        return Expected(pinned, PINNED, entry.sha256_prefix)
    if entry.sha256 is not None:
        return Expected(entry.sha256, f"{CATALOGUE}: {entry.sha256_note}", entry.sha256_prefix)
    if record is not None and record.get("source") == url and isinstance(record.get("sha256"), str):
        when = record.get("pulled", "an earlier pull")
        return Expected(record["sha256"], f"{FIRST_USE}: recorded by the pull of {when}", entry.sha256_prefix)
    return Expected(None, FIRST_USE, entry.sha256_prefix)


def digest(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def check(path: Path, want: Expected) -> str:
    """The file's SHA-256 when it agrees with ``want``; raises ``Mismatch`` saying both values when not."""
    got = digest(path)
    if want.sha256 is not None and got != want.sha256:
        raise Mismatch(f"SHA-256 mismatch for {path.name}: expected {want.sha256} ({want.origin}), got {got}")
    if want.prefix is not None and not got.startswith(want.prefix):
        raise Mismatch(
            f"SHA-256 mismatch for {path.name}: the publisher's file name says it starts with {want.prefix}, got {got}"
        )
    return got
