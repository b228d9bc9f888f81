"""The catalogue of `motionlift pull`, its checksum policy, the cache's registry and how `serve --model` resolves a
name (no network: tests/integration/model/test_pull.py downloads from a server of its own)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import re
import threading
from pathlib import Path

import pytest

from service.cli import main
from service.model.configs import CONFIGS
from service.model.zoo import checksum
from service.model.zoo.catalogue import CATALOGUE, Hosts, Hub, Zoo
from service.model.zoo.registry import Cache, cache_root, resolve_model


def test_the_cache_root_is_the_flag_then_the_environment_then_xdg() -> None:
    env = {"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg", "MOTIONLIFT_CACHE_DIR": "/ml"}
    assert cache_root(Path("/flag"), env) == Path("/flag")
    assert cache_root(None, env) == Path("/ml")
    assert cache_root(None, {"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/motionlift")
    assert cache_root(None, {"HOME": "/home/u"}) == Path("/home/u/.cache/motionlift")
    cache = Cache(Path("/c"))
    assert cache.model("n") == Path("/c/models/n/1/model.pt")  # models/ is a Triton model repository
    assert cache.download("n", "f.pth") == Path("/c/downloads/n/f.pth")


def test_every_entry_fits_a_config_and_says_what_is_known() -> None:
    assert sorted(CATALOGUE) == [
        "mmpose-motionbert-ft-h36m",
        "mmpose-motionbert-h36m",
        "motionbert-h36m",
        "motionbert-lite-h36m",
    ]
    for name, entry in CATALOGUE.items():
        assert entry.name == name and entry.config in CONFIGS
        assert entry.licence.startswith("Apache-2.0") and "Human3.6M" in entry.terms
        assert entry.size and entry.accuracy and entry.sha256_note
        if isinstance(entry.source, Zoo):  # MMPose's file names carry the first 8 hex digits of their SHA-256
            digits = re.search(r"-([0-9a-f]{8})_\d{8}\.pth$", entry.source.path)
            assert digits is not None and digits[1] == entry.sha256_prefix
        else:
            assert isinstance(entry.source, Hub) and entry.source.repo_id == "walterzhu/MotionBERT"
    hosts = Hosts()
    assert hosts.url(CATALOGUE["motionbert-h36m"].source) == (
        "https://huggingface.co/walterzhu/MotionBERT/resolve/main/checkpoint/pose3d/FT_MB_release_MB_ft_h36m/best_epoch.bin"
    )
    assert hosts.url(CATALOGUE["mmpose-motionbert-ft-h36m"].source) == (
        "https://download.openmmlab.com/mmpose/v1/body_3d_keypoint/pose_lift/h36m/motionbert_ft_h36m-d80af323_20230531.pth"
    )


def test_the_expected_sha256_is_pinned_then_catalogued_then_trusted_on_first_use() -> None:
    lite, zoo = CATALOGUE["motionbert-lite-h36m"], CATALOGUE["mmpose-motionbert-h36m"]
    pinned = "c" * 64
    record = {"source": "http://x/f", "sha256": "d" * 64, "pulled": "2026-01-02T03:04:05Z"}
    assert checksum.expected(lite, "http://x/f", pinned, record) == checksum.Expected(pinned, "pinned (--sha256)")
    assert checksum.expected(lite, "http://x/f", None, record).sha256 == lite.sha256
    first_use = checksum.expected(zoo, "http://x/f", None, record)
    assert first_use == checksum.Expected(
        "d" * 64, "trust-on-first-use: recorded by the pull of 2026-01-02T03:04:05Z", "f554954f"
    )
    # A record of another source (a mirror, another file) is no evidence for this one.
    assert checksum.expected(zoo, "http://y/f", None, record) == checksum.Expected(
        None, "trust-on-first-use", "f554954f"
    )


def test_check_refuses_a_wrong_digest_or_prefix(tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert checksum.check(f, checksum.Expected(None, "trust-on-first-use")) == digest
    assert checksum.check(f, checksum.Expected(digest, "catalogue", digest[:8])) == digest
    with pytest.raises(checksum.Mismatch, match=f"expected {'0' * 64} \\(pinned\\), got {digest}"):
        checksum.check(f, checksum.Expected("0" * 64, "pinned"))
    with pytest.raises(checksum.Mismatch, match="file name says it starts with 00000000"):
        checksum.check(f, checksum.Expected(None, "trust-on-first-use", "00000000"))
    assert checksum.parse_sha256(" " + "AB" * 32 + "\n") == "ab" * 32
    with pytest.raises(ValueError, match="--sha256 must be 64 hex digits"):
        checksum.parse_sha256("ab" * 31)


def test_serve_resolves_names_and_keeps_paths(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    known = set(CATALOGUE)
    existing = tmp_path / "model.pt"
    existing.write_bytes(b"x")
    assert resolve_model(existing, cache, known) == existing
    assert resolve_model(Path("dir/missing.pt"), cache, known) == Path("dir/missing.pt")  # preflight says it
    assert resolve_model(Path("unknown-name"), cache, known) == Path("unknown-name")
    with pytest.raises(ValueError, match=r"'motionbert-h36m' is not pulled yet into .*cache: run `motionlift pull"):
        resolve_model(Path("motionbert-h36m"), cache, known)

    cache.record("motionbert-h36m", {"model": str(existing), "sha256": "e" * 64})
    cache.record("mine", {"model": str(existing)})
    assert resolve_model(Path("motionbert-h36m"), cache, known) == existing
    assert resolve_model(Path("mine"), cache, known) == existing
    existing.unlink()
    with pytest.raises(ValueError, match=r"the model pulled as 'mine' .* is missing: run `motionlift pull mine` again"):
        resolve_model(Path("mine"), cache, known)

    cache.registry.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match=r"registry\.json is not a registry"):
        resolve_model(Path("mine"), cache, known)


def test_list_shows_names_sizes_licences_accuracy_and_what_is_pulled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Cache(tmp_path).record("motionbert-h36m", {"model": "/m/model.pt"})
    assert main(["pull", "--list", "--cache-dir", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # unwrapped
    for name in CATALOGUE:
        assert f"{name} [" in out
    assert "motionbert-h36m [pulled: /m/model.pt]" in out and "motionbert-lite-h36m [not pulled]" in out
    assert "accuracy: MPJPE 37.2 mm on Human3.6M from Stacked Hourglass 2D detections" in out
    assert "accuracy: none published for this checkpoint" in out
    assert "sha256: 9811155371db4ca5d20f31a36a232d41012e12e1333882888a564d741861148f (reported by two" in out
    assert "licence: Apache-2.0" in out and "size: about 64 MB" in out and "terms: trained on Human3.6M" in out


def test_pull_without_a_name_or_with_an_unknown_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pull", "--cache-dir", str(tmp_path)]) == 2
    assert "name a checkpoint (`motionlift pull --list` shows them)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pull", "motionbert-huge"])
    assert "invalid choice: 'motionbert-huge'" in capsys.readouterr().err


def test_records_of_pulls_running_side_by_side_are_all_kept(tmp_path: Path) -> None:
    """Each record is a read-change-write of one file: without the registry's lock two writers lose one record."""
    cache = Cache(tmp_path / "cache")
    names = [f"model-{i}" for i in range(12)]
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda n: cache.record(n, {"model": f"/m/{n}.pt"}), names))
    assert {n: r["model"] for n, r in cache.records().items()} == {n: f"/m/{n}.pt" for n in names}


def test_the_pull_lock_is_exclusive_and_says_when_it_waits(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    waited = threading.Event()
    inside = threading.Event()

    def second() -> None:
        with cache.lock("a", on_wait=waited.set):
            inside.set()

    with cache.lock("a"):
        with cache.lock("b", on_wait=lambda: pytest.fail("another name does not wait")):
            pass
        thread = threading.Thread(target=second)
        thread.start()
        assert waited.wait(10)
        assert not inside.wait(0.3)  # still waiting while the first holds the lock
    thread.join(10)
    assert inside.is_set()
