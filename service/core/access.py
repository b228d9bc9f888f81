"""Who may call, and how much: API keys (stored as hashes) and per-key quotas, for both edges alike.

**Keys.** A key is ``mlk_`` and 43 URL-safe characters (32 random bytes from ``secrets``), shown once when it is
made (``motionlift keys create``). The keys file (``--api-keys``) holds only each key's SHA-256, its name and its
quotas, as JSON (``KeyFile``); a fast hash is enough for 256-bit random secrets, which no dictionary holds. A
presented key is hashed and compared with every stored hash by ``hmac.compare_digest``, all of them each time, so
neither the comparison nor the position of the match tells anything through timing. The file is read again when
it changes (looked at once a second at most), so ``keys revoke`` takes effect without a restart; a file that
cannot be read then keeps the keys in force and logs why. Without a keys file every caller is ``ANONYMOUS``.

**Quotas** (per process: with several replicas each has its own budget; README "Security"):

- ``frames_per_s``: a token bucket of one second's frames, refilled continuously. A request is let in while the
  bucket is not empty and takes all its frames, into debt if need be; the next one waits until the debt is paid.
  So a 300-frame clip is never refused for its size, and the rate over time is the quota. Over it:
  ``QuotaExceeded`` with the seconds until the bucket has frames again. Stream frames draw from the same bucket.
- ``streams``: streams open at once; one more is ``QuotaExceeded`` (retry when one ends).

A key's own values in the file win; otherwise the service's defaults (``--quota-frames-per-s``,
``--quota-streams``; 0 = no limit) apply.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from service.config import Settings
from service.errors import QuotaExceeded, Unauthenticated

log = logging.getLogger(__name__)

PREFIX: Final = "mlk_"
RELOAD_EVERY_S: Final = 1.0
NO_KEY: Final = "send an API key: Authorization: Bearer <key> (gRPC: the same in the call's metadata)"
BAD_KEY: Final = "the API key is not valid (unknown or revoked)"


def new_key() -> str:
    """A new random key (32 bytes of ``secrets.token_urlsafe``)."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class KeyEntry:
    """One key in the file: its name, the SHA-256 of the key, when it was made, and its own quotas (None: the
    service's defaults)."""

    name: str
    sha256: str
    created: str
    frames_per_s: float | None = None
    streams: int | None = None


@dataclass(frozen=True)
class KeyFile:
    """The keys file's content. ``read``/``write`` raise ``ValueError`` (with the path) for a file that is not one."""

    keys: tuple[KeyEntry, ...] = ()

    @classmethod
    def read(cls, path: Path) -> KeyFile:
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(tuple(KeyEntry(**entry) for entry in data["keys"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a MotionLift keys file ({type(exc).__name__}: {exc})") from None

    def write(self, path: Path) -> None:
        """Write atomically (a temporary file renamed over it), readable by its owner only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        text = json.dumps({"version": 1, "keys": [asdict(k) for k in self.keys]}, indent=2) + "\n"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)


@dataclass(frozen=True)
class Caller:
    """Who a call comes from: the key's name (never the key) and the quotas in effect (None: no limit)."""

    name: str
    frames_per_s: float | None = None
    streams: int | None = None


ANONYMOUS: Final = Caller("-")


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    streams: int = 0


@dataclass
class Access:
    """Authentication and quotas (see the module). ``keys``: the keys file, None for no authentication;
    ``frames_per_s`` / ``streams``: the default quotas (0 or None: none)."""

    keys: Path | None = None
    frames_per_s: float | None = None
    streams: int | None = None
    clock: Callable[[], float] = time.monotonic
    # State, not settings: out of the constructor and the repr.
    _entries: tuple[tuple[bytes, KeyEntry], ...] = field(default=(), init=False, repr=False)
    _seen: tuple[float, int] | None = field(default=None, init=False, repr=False)
    _checked: float = field(default=-1e9, init=False, repr=False)
    _buckets: dict[str, _Bucket] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.keys is not None:
            self._load(initial=True)

    @property
    def enabled(self) -> bool:
        """Whether calls need a key."""
        return self.keys is not None

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller of an ``Authorization`` value (``Bearer <key>``); ``Unauthenticated`` when keys are required
        and it is missing, malformed, unknown or revoked."""
        if self.keys is None:
            return ANONYMOUS
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated(NO_KEY)
        self._refresh()
        presented = bytes.fromhex(digest(token))
        found: KeyEntry | None = None
        for stored, entry in self._entries:  # every entry, match or not: the time does not depend on where
            if hmac.compare_digest(presented, stored):
                found = entry
        if found is None:
            raise Unauthenticated(BAD_KEY)
        return Caller(
            found.name,
            found.frames_per_s if found.frames_per_s is not None else (self.frames_per_s or None),
            found.streams if found.streams is not None else (self.streams or None),
        )

    def charge(self, caller: Caller, frames: int) -> None:
        """Take ``frames`` from the caller's bucket; ``QuotaExceeded`` (nothing taken) when it is empty."""
        rate = caller.frames_per_s
        if rate is None:
            return
        bucket = self._bucket(caller)
        now = self.clock()
        bucket.tokens = min(rate, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens <= 0:
            wait = -bucket.tokens / rate + 1 / rate
            raise QuotaExceeded(
                f"key {caller.name!r} is over its quota of {rate:g} frames per second; retry in {wait:.2f} s",
                retry_after_s=wait,
            )
        bucket.tokens -= frames

    def refund(self, caller: Caller, frames: int) -> None:
        """Give back frames ``charge`` took for a request the service then could not serve (queue full, model not
        ready): the caller did not get the work, so it does not pay for it."""
        bucket = self._buckets.get(caller.name)
        if bucket is not None and caller.frames_per_s is not None:
            bucket.tokens = min(caller.frames_per_s, bucket.tokens + frames)

    def open_stream(self, caller: Caller) -> Callable[[], None]:
        """Count one more open stream of ``caller``; returns the function that ends it (call it once).
        ``QuotaExceeded`` when the caller has its quota of streams open."""
        limit = caller.streams
        bucket = self._bucket(caller)
        if limit is not None and bucket.streams >= limit:
            raise QuotaExceeded(
                f"key {caller.name!r} has its quota of {limit} streams open; retry when one ends", retry_after_s=1.0
            )
        bucket.streams += 1
        ended = False

        def end() -> None:
            nonlocal ended
            if not ended:
                ended = True
                bucket.streams -= 1

        return end

    def _bucket(self, caller: Caller) -> _Bucket:
        bucket = self._buckets.get(caller.name)
        if bucket is None:
            bucket = self._buckets[caller.name] = _Bucket(caller.frames_per_s or 0.0, self.clock())
        return bucket

    def _refresh(self) -> None:
        now = self.clock()
        if now - self._checked >= RELOAD_EVERY_S:
            self._checked = now
            self._load(initial=False)

    def _load(self, *, initial: bool) -> None:
        assert self.keys is not None
        try:
            stat = self.keys.stat()
            seen = (stat.st_mtime, stat.st_size)
        except FileNotFoundError:
            seen = (0.0, -1)
        if seen == self._seen:
            return
        try:
            entries = KeyFile.read(self.keys).keys
        except ValueError as exc:
            if initial:
                raise
            log.error("keeping the keys in force: %s", exc)
            return
        self._entries = tuple((bytes.fromhex(e.sha256), e) for e in entries)
        self._seen = seen
        if not initial:
            log.info("keys file %s read again: %d keys", self.keys, len(entries))


def settings_access(settings: Settings) -> Access:
    """The ``Access`` of the service's settings (``api_keys``, ``quota_frames_per_s``, ``quota_streams``)."""
    return Access(settings.api_keys, settings.quota_frames_per_s or None, settings.quota_streams or None)
