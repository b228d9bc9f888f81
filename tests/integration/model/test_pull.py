"""`motionlift pull` against a real HTTP server of the test's own (tests/filehost.py) standing in for the Hugging
Face Hub (huggingface_hub pointed at it by its endpoint) and for MMPose's model zoo, serving the tiny reference
checkpoint in the official and the MMPose layout. The catalogue's entries are used as they are (their repository,
file and zoo paths), with the config of these tiny files, and their SHA-256 where a published one must match."""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from service.api.command import add_arguments, settings_from_args
from service.cli import main
from service.model.checkpoint import build_model
from service.model.configs import CONFIGS
from service.model.export import load_torchscript
from service.model.zoo import checksum, fetch
from service.model.zoo.catalogue import CATALOGUE, Entry, Hosts, Hub, Zoo
from service.model.zoo.pull import pull
from service.model.zoo.registry import Cache
from tests.data import FIXTURES, walk
from tests.filehost import FileHost, file_host
from tests.servers import serve_service

pytestmark = pytest.mark.slow  # each pull exports a model (torch.jit.script)

OFFICIAL = (FIXTURES / "tiny_official.bin").read_bytes()
MMPOSE = (FIXTURES / "tiny_mmpose.pth").read_bytes()
LITE = "motionbert-lite-h36m"  # Hugging Face, official layout, a SHA-256 in the catalogue
ZOO = "mmpose-motionbert-h36m"  # model zoo URL, MMPose layout, a SHA-256 prefix in the file name


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def path_of(entry: Entry) -> str:
    """The URL path the real hosts serve ``entry``'s file at (the test host serves it at the same path)."""
    source = entry.source
    if isinstance(source, Hub):
        return f"/{source.repo_id}/resolve/{source.revision}/{source.filename}"
    assert isinstance(source, Zoo)
    return f"/{source.path}"


def tiny(name: str, data: bytes) -> Entry:
    """The catalogue's entry for the tiny file ``data``: same source; tiny config; a published value the file has."""
    entry = CATALOGUE[name]
    known = {"sha256": sha(data)} if entry.sha256 else {"sha256_prefix": sha(data)[:8]}
    return dataclasses.replace(entry, config="tiny", **known)  # type: ignore[arg-type]


@pytest.fixture
def host() -> Iterator[FileHost]:
    with file_host() as served:
        yield served


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def reference_output(frames: int = 27) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(1, frames, 17, 3, generator=torch.Generator().manual_seed(3))
    return x, build_model(CONFIGS["tiny"], checkpoint=FIXTURES / "tiny_official.bin")(x)


def test_pulls_the_official_layout_through_huggingface_hub_and_exports_it(
    host: FileHost, cache: Cache, tmp_path: Path
) -> None:
    entry = tiny(LITE, OFFICIAL)
    host.put(path_of(entry), OFFICIAL)
    pulled = pull(entry, cache, Hosts(host.url, host.url), hf_cache=tmp_path / "hf", progress=False)

    assert (pulled.sha256, pulled.cached, pulled.model) == (sha(OFFICIAL), False, cache.model(LITE))
    assert pulled.origin.startswith("catalogue: ")
    # In huggingface_hub's cache layout, under the commit the server named.
    assert pulled.checkpoint.is_relative_to(tmp_path / "hf" / "models--walterzhu--MotionBERT" / "snapshots")
    assert [r.method for r in host.requests if r.path == path_of(entry)][-1] == "GET"
    module, meta = load_torchscript(pulled.model)
    x, expected = reference_output()
    torch.testing.assert_close(module(x), expected, rtol=0, atol=0)
    assert (meta["config"], meta["params"], meta["trained"]) == ("tiny", 294_023, True)
    assert meta["weights"] == f"{LITE}: {host.url}{path_of(entry)} (SHA-256 {sha(OFFICIAL)})"
    card = cache.card(LITE).read_text(encoding="utf-8")
    assert "Apache-2.0" in card and "Human3.6M" in card and sha(OFFICIAL) in card
    record = cache.records()[LITE]
    assert (record["model"], record["sha256"], record["source"]) == (
        str(cache.model(LITE)),
        sha(OFFICIAL),
        f"{host.url}{path_of(entry)}",
    )


def test_pulls_the_mmpose_layout_from_the_zoo_and_trusts_its_first_digest(host: FileHost, cache: Cache) -> None:
    entry = tiny(ZOO, MMPOSE)
    host.put(path_of(entry), MMPOSE)
    first = pull(entry, cache, Hosts(closed_port(), host.url), progress=False)

    assert first.checkpoint == cache.download(ZOO, "motionbert_h36m-f554954f_20230531.pth")
    assert (first.sha256, first.origin) == (sha(MMPOSE), "trust-on-first-use: no published value, recorded now")
    module, meta = load_torchscript(first.model)
    x, expected = reference_output()
    torch.testing.assert_close(module(x), expected, rtol=0, atol=0)  # the same weights as the official layout's
    assert meta["card"] == str(cache.card(ZOO))

    # The file changes on the server: the next pull is checked against the digest recorded on first use.
    first.checkpoint.unlink()
    host.put(path_of(entry), OFFICIAL)
    with pytest.raises(checksum.Mismatch, match=f"expected {sha(MMPOSE)} \\(trust-on-first-use: recorded by the pull"):
        pull(dataclasses.replace(entry, sha256_prefix=None), cache, Hosts(closed_port(), host.url), progress=False)
    assert not first.checkpoint.exists()
    assert cache.records()[ZOO]["sha256"] == sha(MMPOSE)  # the record stays that of the trusted file


def test_a_checksum_mismatch_is_refused_and_the_file_removed(host: FileHost, tmp_path: Path) -> None:
    # The real catalogue entry: its reported SHA-256 is not the tiny file's.
    host.put(path_of(CATALOGUE[LITE]), OFFICIAL)
    hf_cache = tmp_path / "hf"
    flags = ["--cache-dir", str(tmp_path / "cache"), "--hf-cache", str(hf_cache), "--hf-endpoint", host.url]
    assert main(["pull", LITE, *flags]) == 1
    assert not [p for p in hf_cache.rglob("*") if p.is_file() and "blobs" in p.parts]  # the blob is gone
    assert not (tmp_path / "cache" / "registry.json").exists()
    assert not (tmp_path / "cache" / "models").exists()

    # A pinned value is enforced the same way for a model-zoo file, and the download removed.
    host.put(path_of(CATALOGUE[ZOO]), MMPOSE)
    pinned = "ab" * 32
    code = main(["pull", ZOO, "--cache-dir", str(tmp_path / "cache"), "--zoo-url", host.url, "--sha256", pinned])
    assert code == 1
    assert list((tmp_path / "cache" / "downloads" / ZOO).iterdir()) == []


def test_the_mismatch_message_names_both_values(
    host: FileHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host.put(path_of(CATALOGUE[ZOO]), MMPOSE)
    assert main(["pull", ZOO, "--cache-dir", str(tmp_path / "cache"), "--zoo-url", host.url]) == 1
    err = capsys.readouterr().err
    assert f"the publisher's file name says it starts with f554954f, got {sha(MMPOSE)}" in err
    assert main(["pull", ZOO, "--cache-dir", str(tmp_path), "--sha256", "xyz"]) == 2
    assert "--sha256 must be 64 hex digits, got 'xyz'" in capsys.readouterr().err


def test_a_cut_download_resumes_with_a_range_request(host: FileHost, cache: Cache) -> None:
    entry = tiny(ZOO, MMPOSE)
    cut = len(MMPOSE) // 3
    host.put(path_of(entry), MMPOSE, cuts=(cut,))
    pulled = pull(entry, cache, Hosts(closed_port(), host.url), progress=False)
    assert host.gets(path_of(entry)) == [None, f"bytes={cut}-"]
    assert pulled.sha256 == sha(MMPOSE)


def test_a_download_cut_in_every_attempt_resumes_in_the_next_run(host: FileHost, cache: Cache) -> None:
    entry = tiny(ZOO, MMPOSE)
    cuts = (1000, 2000, 3000)  # one per attempt of the first run
    host.put(path_of(entry), MMPOSE, cuts=cuts)
    hosts = Hosts(closed_port(), host.url)
    with pytest.raises(fetch.Interrupted, match=r"broke off 3 times .* 3,000 bytes are kept in .*run the same command"):
        pull(entry, cache, hosts, progress=False)
    part = cache.download(ZOO, entry.source.file_name).with_suffix(".pth.part")
    assert part.stat().st_size == 3000

    pulled = pull(entry, cache, hosts, progress=False)  # the next run asks for the rest
    assert host.gets(path_of(entry)) == [None, "bytes=1000-", "bytes=2000-", "bytes=3000-"]
    assert (pulled.sha256, part.exists()) == (sha(MMPOSE), False)


def test_huggingface_hub_resumes_a_cut_transfer_with_a_range_request(
    host: FileHost, cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    # huggingface_hub writes what it receives in 10 MiB chunks: a cut inside the first one of a 1 MB file would
    # leave nothing to resume from, so the chunks are made small (its own constant, read at each download).
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    entry = tiny(LITE, OFFICIAL)
    cut = 5 * 64 * 1024 + 100
    host.put(path_of(entry), OFFICIAL, cuts=(cut,))
    pulled = pull(entry, cache, Hosts(host.url, closed_port()), hf_cache=tmp_path / "hf", progress=False)
    assert host.gets(path_of(entry)) == [None, f"bytes={5 * 64 * 1024}-"]
    assert pulled.sha256 == sha(OFFICIAL)


def test_offline_says_what_to_download_and_where_to_put_it(
    cache: Cache, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = closed_port()
    flags = ["--cache-dir", str(cache.root), "--hf-cache", str(tmp_path / "hf")]
    assert main(["pull", "motionbert-h36m", *flags, "--hf-endpoint", url]) == 1
    err = capsys.readouterr().err
    place = cache.download("motionbert-h36m", "best_epoch.bin")
    assert err.startswith(f"motionlift pull: cannot reach {url}/walterzhu/MotionBERT/resolve/main/")
    assert (
        f"\n  {url}/walterzhu/MotionBERT/resolve/main/checkpoint/pose3d/FT_MB_release_MB_ft_h36m/best_epoch.bin\n"
        in err
    )
    assert f"put it here, under this exact name:\n  {place}\n" in err
    assert f"`motionlift pull motionbert-h36m --cache-dir {cache.root}` again" in err
    model = cache.model("motionbert-h36m")
    assert f"motionlift export --config full --checkpoint {place} --out {model}\n" in err
    assert err.rstrip().endswith(f"motionlift serve --model {model}")

    # Doing as it says: the file put there by hand is used without any connection.
    entry = tiny(ZOO, MMPOSE)
    by_hand = cache.download(ZOO, entry.source.file_name)
    by_hand.parent.mkdir(parents=True)
    by_hand.write_bytes(MMPOSE)
    pulled = pull(entry, cache, Hosts(url, url), progress=False)
    assert (pulled.cached, pulled.checkpoint, pulled.sha256) == (True, by_hand, sha(MMPOSE))


def test_serve_model_name_serves_the_pulled_model(host: FileHost, cache: Cache, tmp_path: Path, rest_url: str) -> None:
    entry = tiny(LITE, OFFICIAL)
    host.put(path_of(entry), OFFICIAL)
    pull(entry, cache, Hosts(host.url, host.url), hf_cache=tmp_path / "hf", progress=False)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = settings_from_args(parser.parse_args(["--model", LITE, "--cache-dir", str(cache.root)]))
    assert settings.model == cache.model(LITE)

    body = {"keypoints": walk(40), "format": "coco", "image_size": [1920, 1080]}
    with serve_service(settings) as url:
        model = httpx.get(f"{url}/v1/model").json()
        answer = httpx.post(f"{url}/lift", json=body, timeout=60)
    assert (model["config"], model["trained"], model["card"]) == ("tiny", True, str(cache.card(LITE)))
    assert answer.status_code == 200, answer.text
    # The session's service serves the same weights exported by hand from the fixture: the same answer.
    reference = httpx.post(f"{rest_url}/lift", json=body, timeout=60).json()
    np.testing.assert_array_equal(answer.json()["joints3d"], reference["joints3d"])


def test_serve_names_a_model_not_pulled_yet(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(
        ValueError, match=r"'motionbert-h36m' is not pulled yet .* run `motionlift pull motionbert-h36m`"
    ):
        settings_from_args(parser.parse_args(["--model", "motionbert-h36m", "--cache-dir", str(tmp_path)]))


def test_a_second_pull_of_a_name_waits_for_the_first_and_finds_its_file(host: FileHost, cache: Cache) -> None:
    entry = tiny(ZOO, MMPOSE)
    host.put(path_of(entry), MMPOSE)
    hosts = Hosts(closed_port(), host.url)
    waited = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with cache.lock(ZOO):  # another `motionlift pull` of the same name is running
            first = pool.submit(pull, entry, cache, hosts, progress=False, on_wait=waited.set)
            assert waited.wait(10)
            assert host.gets(path_of(entry)) == []  # it waits before touching the download
        pulled = first.result(60)
    assert (pulled.sha256, pulled.cached) == (sha(MMPOSE), False)
    again = pull(entry, cache, hosts, progress=False)
    assert (again.cached, host.gets(path_of(entry))) == (True, [None])  # found the file: fetched once


def test_the_cli_says_it_waits_for_another_pull(
    host: FileHost, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    host.put(path_of(CATALOGUE[ZOO]), MMPOSE)
    cache = Cache(tmp_path / "cache")
    args = ["pull", ZOO, "--cache-dir", str(cache.root), "--zoo-url", host.url]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with cache.lock(ZOO):
            code = pool.submit(main, args)
            deadline = time.monotonic() + 10
            while "waiting" not in (seen := capfd.readouterr().err) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert host.gets(path_of(CATALOGUE[ZOO])) == []
        # Then it pulls: the test's file is not the publisher's, whose digest the real file name starts with.
        assert code.result(60) == 1
    assert f"motionlift pull: another pull of {ZOO} is running; waiting for it to finish" in seen
    assert "the publisher's file name says it starts with f554954f" in capfd.readouterr().err
