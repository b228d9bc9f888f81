"""A real HTTP file server for the pull tests, on 127.0.0.1 port 0 in a background thread: it answers the Hugging
Face Hub's ``/{repo_id}/resolve/{revision}/{filename}`` (HEAD with the headers huggingface_hub needs: X-Repo-Commit,
ETag, Content-Length) and plain model-zoo paths alike, honours ``Range`` and ``If-Range``, logs every request, and
cuts a response off mid-file when told to."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class FileHost:
    """Files by URL path; ``cuts[path]``: the byte offsets at which the next GET answers of ``path`` stop (one
    offset per answer, used in order)."""

    files: dict[str, bytes] = field(default_factory=dict)
    cuts: dict[str, list[int]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def put(self, path: str, data: bytes, cuts: tuple[int, ...] = ()) -> None:
        self.files[path] = data
        self.cuts[path] = list(cuts)

    def gets(self, path: str) -> list[str | None]:
        """The Range header of every GET of ``path`` so far (None: the whole file was asked for)."""
        return [r.range for r in self.requests if r.method == "GET" and r.path == path]


def etag(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


class _Handler(BaseHTTPRequestHandler):
    host: FileHost  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the log is `host.requests`
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        self.host.requests.append(Request(self.command, path, self.headers.get("Range")))
        data = self.host.files.get(path)
        if data is None:
            self.send_error(404)
            return
        start = self._start(data)
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag(data))
        self.send_header("X-Repo-Commit", COMMIT)
        self.end_headers()
        if not body:
            return
        cuts = self.host.cuts.get(path, [])
        end = cuts.pop(0) if cuts else len(data)
        self.wfile.write(data[start:end])
        self.close_connection = True  # the client sees the connection close before Content-Length bytes came

    def _start(self, data: bytes) -> int:
        asked = self.headers.get("Range", "")
        if_range = self.headers.get("If-Range")
        if not asked.startswith("bytes=") or (if_range is not None and if_range != etag(data)):
            return 0
        first = asked.removeprefix("bytes=").split("-", 1)[0]
        return int(first) if first.isdigit() and int(first) < len(data) else 0


@contextmanager
def file_host() -> Iterator[FileHost]:
    host = FileHost()
    handler = type("Handler", (_Handler,), {"host": host})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    host.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="file-host", daemon=True)
    thread.start()
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
