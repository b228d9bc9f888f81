"""Resumable download of a plain URL (a model zoo's file) with a progress bar on stderr.

The bytes go to ``FILE.part`` beside the destination; the server's validator (ETag, else Last-Modified) goes to
``FILE.part.json``. A later attempt, in this run or the next, asks for the rest with ``Range: bytes=N-`` and
``If-Range: <validator>``, so a file that changed on the server is fetched whole instead of spliced. Only a complete
file is renamed to ``FILE``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import httpx


class Unreachable(OSError):
    """The host could not be reached at all (no network, refused, name not resolved): nothing was received."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url


class Interrupted(OSError):
    """The transfer broke off more often than the attempts allowed; the part received stays for the next run."""


class Refused(OSError):
    """The server answered with an error status (e.g. 404): retrying will not help."""


def download(url: str, dest: Path, *, attempts: int = 3, timeout_s: float = 30.0, progress: bool = True) -> Path:
    """Fetch ``url`` into ``dest`` (parents created), resuming a ``dest.part`` left by an earlier attempt; return
    ``dest``.

    A broken transfer is resumed at once up to ``attempts`` times in all. Raises ``Unreachable`` when no
    connection can be made, ``Refused`` for an HTTP error status, and ``Interrupted`` when the attempts run out
    (the part is kept: running again resumes it).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with httpx.Client(follow_redirects=True, timeout=timeout_s) as client:
        for attempt in range(1, attempts + 1):
            try:
                _transfer(client, url, part, progress)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise Unreachable(url, f"{type(exc).__name__}: {exc}") from exc
            except httpx.TransportError as exc:
                have = part.stat().st_size if part.exists() else 0
                if attempt == attempts:
                    raise Interrupted(
                        f"the download of {url} broke off {attempts} times ({type(exc).__name__}: {exc}); "
                        f"{have:,} bytes are kept in {part}: run the same command again to resume"
                    ) from exc
                continue
            part.replace(dest)
            _validator_file(part).unlink(missing_ok=True)
            return dest
    raise AssertionError("unreachable: the loop returns or raises")  # for the type checker (attempts >= 1)


def _transfer(client: httpx.Client, url: str, part: Path, progress: bool) -> None:
    """One request: the whole file, or the rest of ``part``. Raises ``httpx.TransportError`` if it breaks off."""
    have = part.stat().st_size if part.exists() else 0
    validator = _read_validator(part) if have else None
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        if validator:
            headers["If-Range"] = validator
    with client.stream("GET", url, headers=headers) as response:
        offset = _offset(response) if response.status_code == 206 else 0
        if have and (response.status_code == 416 or (response.status_code == 206 and offset != have)):
            part.unlink()  # the part is no prefix of the file (or all of it), or another range came: fetch it whole
            return _transfer(client, url, part, progress)
        if response.status_code not in (200, 206):
            raise Refused(f"{url}: HTTP {response.status_code} {response.reason_phrase}")
        _write_validator(part, response.headers)
        total = _total(response, offset)
        with part.open("r+b" if offset else "wb") as out:
            out.seek(offset)
            out.truncate()
            _copy(response, out, total, offset, part.name.removesuffix(".part"), progress)
            received = out.tell()
    if total is not None and received != total:
        raise httpx.RemoteProtocolError(f"received {received:,} of {total:,} bytes", request=response.request)


def _copy(response: httpx.Response, out: IO[bytes], total: int | None, offset: int, label: str, show: bool) -> None:
    from tqdm import tqdm

    with tqdm(
        total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not show
    ) as bar:
        for chunk in response.iter_bytes():  # as it arrives: a transfer cut off keeps all it received
            out.write(chunk)
            bar.update(len(chunk))


def _offset(response: httpx.Response) -> int:
    """Where a 206 answer starts (``Content-Range: bytes START-END/TOTAL``); -1 when it does not say."""
    value = response.headers.get("Content-Range", "")
    unit, _, span = value.partition(" ")
    start = span.split("-", 1)[0]
    return int(start) if unit == "bytes" and start.isdigit() else -1


def _total(response: httpx.Response, offset: int) -> int | None:
    length = response.headers.get("Content-Length")
    return offset + int(length) if length is not None and length.isdigit() else None


def _validator_file(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _write_validator(part: Path, headers: httpx.Headers) -> None:
    # A weak ETag ("W/...") may not be used in If-Range; Last-Modified may.
    etag = headers.get("ETag")
    value = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")
    _validator_file(part).write_text(json.dumps({"validator": value}), encoding="utf-8")


def _read_validator(part: Path) -> str | None:
    try:
        raw: Any = json.loads(_validator_file(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = raw.get("validator") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None
