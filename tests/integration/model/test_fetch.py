"""The model-zoo downloader (service/model/zoo/fetch.py) against a real HTTP server of the test's own."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from service.model.zoo import fetch
from tests.filehost import etag, file_host

OLD = bytes(range(256)) * 400
NEW = bytes(reversed(range(256))) * 500


def test_a_file_changed_on_the_server_is_fetched_whole_not_spliced(tmp_path: Path) -> None:
    dest = tmp_path / "f.pth"
    with file_host() as host:
        host.put("/f.pth", OLD, cuts=(5000, 6000))
        with pytest.raises(fetch.Interrupted):
            fetch.download(f"{host.url}/f.pth", dest, attempts=2, progress=False)
        host.put("/f.pth", NEW)  # another ETag: If-Range gets the whole of NEW, not NEW's bytes after OLD's part
        fetch.download(f"{host.url}/f.pth", dest, progress=False)
        asked = [r.range for r in host.requests]
    assert asked == [None, "bytes=5000-", "bytes=6000-"]
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == hashlib.sha256(NEW).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pth"]  # no part or validator left


def test_the_part_remembers_the_validator_it_was_cut_from(tmp_path: Path) -> None:
    dest = tmp_path / "f.pth"
    with file_host() as host:
        host.put("/f.pth", OLD, cuts=(7000,))
        with pytest.raises(fetch.Interrupted):
            fetch.download(f"{host.url}/f.pth", dest, attempts=1, progress=False)
    assert (tmp_path / "f.pth.part").stat().st_size == 7000
    validator = json.loads((tmp_path / "f.pth.part.json").read_text(encoding="utf-8"))
    assert validator == {"validator": etag(OLD)}


def test_an_error_status_is_refused_and_no_host_is_unreachable(tmp_path: Path) -> None:
    with file_host() as host:
        url = host.url
        with pytest.raises(fetch.Refused, match=r"/missing\.pth: HTTP 404"):
            fetch.download(f"{url}/missing.pth", tmp_path / "m.pth", progress=False)
    with pytest.raises(fetch.Unreachable, match=f"cannot reach {url}/f.pth: ConnectError"):
        fetch.download(f"{url}/f.pth", tmp_path / "f.pth", progress=False)  # the server has stopped
