"""API keys and quotas (service/core/access.py) with a hand-driven clock: who gets in, the token bucket's debt and
its retry hint, streams at once, and the keys file read again when it changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.core.access import ANONYMOUS, BAD_KEY, NO_KEY, Access, Caller, KeyEntry, KeyFile, digest, new_key
from service.errors import QuotaExceeded, Unauthenticated


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def keys_file(path: Path, **keys: tuple[str, float | None, int | None]) -> None:
    entries = [KeyEntry(name, digest(key), "2026-11-30T00:00:00+00:00", rate, streams) for name, (key, rate, streams)
               in keys.items()]  # fmt: skip
    KeyFile(tuple(entries)).write(path)


def test_without_a_keys_file_everyone_is_anonymous_and_unlimited() -> None:
    access = Access()
    assert not access.enabled
    assert access.authenticate(None) is ANONYMOUS
    access.charge(ANONYMOUS, 10**9)  # no quota: nothing to refuse
    access.open_stream(ANONYMOUS)()


def test_keys_are_checked_and_the_file_holds_only_hashes(tmp_path: Path) -> None:
    alice, bob = new_key(), new_key()
    assert alice.startswith("mlk_") and len(alice) == 47 and alice != bob
    path = tmp_path / "keys.json"
    keys_file(path, alice=(alice, 5.0, None), bob=(bob, None, 2))
    assert alice not in path.read_text() and digest(alice) in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    access = Access(path, frames_per_s=50.0, streams=3)
    assert access.authenticate(f"Bearer {alice}") == Caller("alice", 5.0, 3)  # its own rate, the default streams
    assert access.authenticate(f"bearer  {bob} ") == Caller("bob", 50.0, 2)
    refused = [(None, NO_KEY), ("", NO_KEY), (alice, NO_KEY), (f"Basic {alice}", NO_KEY), ("Bearer ", NO_KEY),
               (f"Bearer {alice}x", BAD_KEY), ("Bearer \\udcff", BAD_KEY)]  # fmt: skip
    for given, message in refused:
        with pytest.raises(Unauthenticated) as caught:
            access.authenticate(given)
        assert caught.value.message == message
        assert alice not in caught.value.message


def test_a_changed_file_is_read_again_and_a_broken_one_keeps_the_keys(tmp_path: Path) -> None:
    alice, bob = new_key(), new_key()
    path = tmp_path / "keys.json"
    keys_file(path, alice=(alice, None, None))
    clock = Clock()
    access = Access(path, clock=clock)
    assert access.authenticate(f"Bearer {alice}").name == "alice"
    keys_file(path, bob=(bob, None, None))  # alice revoked, bob created
    os.utime(path, (clock.now + 5, clock.now + 5))  # a new modification time even within the same second
    clock.now += 1.0
    with pytest.raises(Unauthenticated):
        access.authenticate(f"Bearer {alice}")
    assert access.authenticate(f"Bearer {bob}").name == "bob"
    path.write_text("{not json")
    clock.now += 1.0
    assert access.authenticate(f"Bearer {bob}").name == "bob"  # the broken file is not taken


def test_the_bucket_lets_a_request_into_debt_and_says_when_to_retry() -> None:
    clock = Clock()
    access = Access(clock=clock)
    caller = Caller("alice", frames_per_s=10.0)
    access.charge(caller, 27)  # a full bucket (10) lets 27 in: 17 in debt
    with pytest.raises(QuotaExceeded) as caught:
        access.charge(caller, 1)
    assert caught.value.retry_after_s == pytest.approx(1.8)  # (17 + 1) / 10 s
    assert caught.value.message == "key 'alice' is over its quota of 10 frames per second; retry in 1.80 s"
    clock.now += 1.65  # the debt is paid back at 10 frames/s: still half a frame short
    with pytest.raises(QuotaExceeded):
        access.charge(caller, 1)
    clock.now += 0.1
    access.charge(caller, 1)
    access.charge(Caller("bob", frames_per_s=10.0), 9)  # another key has its own bucket
    clock.now += 60
    access.charge(caller, 10)  # a bucket holds one second of frames, however long it was idle
    with pytest.raises(QuotaExceeded):
        access.charge(caller, 1)


def test_streams_at_once_are_counted_per_key() -> None:
    access = Access()
    dave = Caller("dave", streams=1)
    end = access.open_stream(dave)
    with pytest.raises(QuotaExceeded, match="key 'dave' has its quota of 1 streams open"):
        access.open_stream(dave)
    access.open_stream(Caller("erin", streams=1))
    end()
    end()  # ending twice counts once
    access.open_stream(dave)
    with pytest.raises(QuotaExceeded):
        access.open_stream(dave)


def test_frames_of_a_request_the_service_could_not_serve_are_given_back() -> None:
    clock = Clock()
    access = Access(clock=clock)
    caller = Caller("alice", frames_per_s=10.0)
    access.charge(caller, 27)
    access.refund(caller, 27)  # e.g. the queue was full: the bucket is as it was, never over one second's frames
    access.charge(caller, 9)
    access.charge(caller, 1)
    with pytest.raises(QuotaExceeded):
        access.charge(caller, 1)
    access.refund(Caller("nobody", frames_per_s=10.0), 5)  # a key that never paid: nothing to give back
