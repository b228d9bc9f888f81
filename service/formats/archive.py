"""A zip archive of detector output: how an OpenPose folder travels in one upload (``zip -r frames.zip json/``).

OpenPose writes one JSON file per frame (``openpose.py``); a folder cannot be one HTTP body, a zip of it can. The
archive holds either OpenPose's per-frame files (``*_keypoints.json``, else every ``*.json``; in any folder of
the archive, in name order, which is frame order for OpenPose's zero-padded numbers; the frame ids are the file
names) or exactly one JSON file of any layout. Limits, checked before anything is unpacked and again while it is
(an archive's declared sizes can lie): ``MAX_ENTRIES`` files and ``MAX_UNPACKED`` bytes in all, so a small
archive cannot unpack into gigabytes (a zip bomb). Every problem is a ``KeypointFileError``.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import PurePosixPath
from typing import Any, Final

from service.formats.detections import KeypointFileError

MAGIC: Final = b"PK\x03\x04"
MAX_ENTRIES: Final = 100_000  # an hour of 25 fps video, one file per frame
MAX_UNPACKED: Final = 64 << 20  # about 40,000 OpenPose frames of one person (~1.5 KB each)


def is_zip(content: bytes) -> bool:
    return content.startswith(MAGIC)


def unpack(content: bytes) -> tuple[Any, list[str] | None]:
    """The archive's JSON: (the list of OpenPose frames, their file names), or (one file's JSON, None)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise KeypointFileError(f"not a readable zip archive ({exc})") from None
    with archive:
        entries = [i for i in archive.infolist() if not i.is_dir() and i.filename.lower().endswith(".json")]
        frames = [i for i in entries if i.filename.endswith("_keypoints.json")] or entries
        if not frames:
            raise KeypointFileError("a zip archive without a .json file (expected OpenPose's *_keypoints.json)")
        if len(frames) > MAX_ENTRIES:
            raise KeypointFileError(f"a zip archive of {len(frames)} JSON files; at most {MAX_ENTRIES}")
        if sum(i.file_size for i in frames) > MAX_UNPACKED:
            raise KeypointFileError(f"the archive's JSON files unpack to more than {MAX_UNPACKED >> 20} MiB")
        frames.sort(key=lambda i: (PurePosixPath(i.filename).name, i.filename))
        left = MAX_UNPACKED
        data = []
        for info in frames:
            text = _read(archive, info, left)
            left -= len(text)
            data.append(_json(text, info.filename))
    if len(frames) == 1 and not frames[0].filename.endswith("_keypoints.json"):
        return data[0], None
    return data, [PurePosixPath(i.filename).name for i in frames]


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, left: int) -> bytes:
    try:
        with archive.open(info) as file:
            text = file.read(left + 1)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError) as exc:  # corrupt, encrypted
        raise KeypointFileError(f"{info.filename}: cannot be unpacked ({exc})") from None
    if len(text) > left:
        raise KeypointFileError(f"the archive's JSON files unpack to more than {MAX_UNPACKED >> 20} MiB")
    return text


def _json(text: bytes, name: str) -> Any:
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeypointFileError(f"{name}: not a JSON file ({exc})") from None
