"""A zip archive of detector output (service/formats/archive.py): an OpenPose folder zipped reads as the folder
does, one zipped JSON file as that file; broken archives and zip bombs are refused with their reason."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from service.formats import KeypointFileError, read_keypoints
from service.formats.archive import MAX_UNPACKED, unpack
from tests.data import FIXTURES

DETECTORS = FIXTURES / "detectors"


def zipped(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def openpose_zip() -> bytes:
    # In the archive's folder, out of order and beside a file that is not a frame: name order is frame order.
    frames = sorted((DETECTORS / "openpose").glob("*.json"), reverse=True)
    files = {f"run/json/{f.name}": f.read_bytes() for f in frames}
    return zipped({"run/README.txt": b"not a frame", **files})


def test_a_zipped_openpose_folder_reads_as_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "frames.zip"
    path.write_bytes(openpose_zip())
    folder, archive = read_keypoints(DETECTORS / "openpose"), read_keypoints(path)
    assert (archive.source, archive.layout, archive.frames, archive.frame_ids) == (
        "openpose",
        "coco",
        3,
        ("clip_000000000000_keypoints.json", "clip_000000000001_keypoints.json", "clip_000000000002_keypoints.json"),
    )
    assert archive.frame_ids == folder.frame_ids
    assert [t.id for t in archive.tracks] == [t.id for t in folder.tracks]
    for a, b in zip(archive.tracks, folder.tracks, strict=True):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_one_zipped_json_file_reads_as_that_file(tmp_path: Path) -> None:
    path = tmp_path / "coco.zip"
    path.write_bytes(zipped({"results/coco_results.json": (DETECTORS / "coco_results.json").read_bytes()}))
    plain, archive = read_keypoints(DETECTORS / "coco_results.json"), read_keypoints(path)
    assert (archive.source, archive.frames) == (plain.source, plain.frames) == ("coco", plain.frames)
    np.testing.assert_array_equal(archive.tracks[0].keypoints, plain.tracks[0].keypoints)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04 and then nothing", "not a readable zip archive"),
        (zipped({"notes.txt": b"hello"}), "a zip archive without a .json file (expected OpenPose's *_keypoints.json)"),
        (zipped({"a_keypoints.json": b"{not json"}), "a_keypoints.json: not a JSON file"),
        # 80 MiB of spaces deflate to about 80 KB: refused from the declared sizes, before unpacking.
        (zipped({"bomb_keypoints.json": b" " * (MAX_UNPACKED + (16 << 20))}), "unpack to more than 64 MiB"),
    ],
)
def test_broken_archives_and_zip_bombs_are_refused(content: bytes, message: str) -> None:
    with pytest.raises(KeypointFileError, match=re.escape(message)):
        unpack(content)


def test_an_archive_that_lies_about_its_sizes_is_stopped_while_unpacking() -> None:
    content = bytearray(zipped({"lie_keypoints.json": b" " * (MAX_UNPACKED + 1024)}))
    # Rewrite the declared size (central directory, offset 24 of its record) to 1 byte: the size check passes;
    # zipfile unpacks no more than the declared size, and the CRC of that byte gives the lie away.
    record = content.rindex(b"PK\x01\x02")
    content[record + 24 : record + 28] = (1).to_bytes(4, "little")
    with pytest.raises(KeypointFileError, match=re.escape("lie_keypoints.json: cannot be unpacked (Bad CRC-32")):
        unpack(bytes(content))
