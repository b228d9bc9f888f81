"""``POST /lift/file`` through the real service: a detector's file uploaded as it is gives the same joints as the
CLI, the JSON body of /lift, gRPC and the Python client given the same file; its mistakes name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from service.cli import main
from service.client import MotionLiftClient
from service.formats import read_keypoints
from tests.conftest import Served
from tests.data import FIXTURES

ALPHAPOSE = FIXTURES / "detectors" / "alphapose_halpe26_tracked.json"
SIZE = (1920.0, 1080.0)


def _joints(tracks: list[dict[str, object]]) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    return {str(t["id"]): np.asarray(t["joints3d"], np.float32) for t in tracks}


def test_an_uploaded_file_is_answered_as_every_other_path_answers_it(served: Served, tmp_path: Path) -> None:
    url = served.rest_url
    query = {"image_size": "1920,1080", "min_track_frames": "1"}  # a 4-frame file: a second of video is 30
    with ALPHAPOSE.open("rb") as f:
        upload = httpx.post(f"{url}/lift/file", params=query, files={"file": ("results.json", f)}, timeout=60)
    assert upload.status_code == 200, upload.text
    got = upload.json()
    read = read_keypoints(ALPHAPOSE)
    assert got["input"] == {"source": "alphapose", "format": read.layout, "frames": read.frames}
    assert [(t["id"], t["start"], t["frames"]) for t in got["tracks"]] == [
        (t.id, t.start, len(t.keypoints)) for t in read.tracks
    ]
    assert [t["filled"] for t in got["tracks"]] == [
        [t.start + int(i) for i in np.flatnonzero(~t.detected)] for t in read.tracks
    ]
    assert any(t["filled"] for t in got["tracks"])  # person 2 is missing from one frame: filled, not detected
    uploaded = _joints(got["tracks"])

    raw = httpx.post(
        f"{url}/lift/file?source=alphapose&image_size=1920,1080&min_track_frames=1",
        content=ALPHAPOSE.read_bytes(),
        timeout=60,
    )
    body = {"tracks": [{"id": t.id, "keypoints": t.keypoints.tolist()} for t in read.tracks], "format": read.layout,
            "image_size": list(SIZE)}  # fmt: skip
    as_json = httpx.post(f"{url}/lift", json=body, timeout=60)
    with MotionLiftClient(grpc=served.grpc_target) as client:
        rpc = client.lift(tracks={t.id: t.keypoints for t in read.tracks}, format=read.layout, image_size=SIZE)
    out = tmp_path / "cli.json"
    flags = ["--image-size", "1920", "1080", "--min-track-frames", "1", "--out", str(out)]
    assert main(["lift", str(ALPHAPOSE), "--url", url, *flags]) == 0
    cli = json.loads(out.read_text())
    assert [(t["id"], t["start"], t["filled"]) for t in cli["tracks"]] == [
        (t["id"], t["start"], t["filled"]) for t in got["tracks"]
    ]
    for name, tracks in (("raw body", raw.json()["tracks"]), ("/lift JSON", as_json.json()["tracks"]),
                         ("CLI", cli["tracks"])):  # fmt: skip
        other = _joints(tracks)
        assert other.keys() == uploaded.keys(), name
        for tid in uploaded:
            np.testing.assert_array_equal(other[tid], uploaded[tid], err_msg=name)
    for track in rpc.tracks:
        np.testing.assert_array_equal(track.joints3d, uploaded[track.id], err_msg="gRPC")


def test_upload_mistakes_name_the_field(served: Served) -> None:
    url = served.rest_url
    content = ALPHAPOSE.read_bytes()
    cases = [
        ("?source=openpose2", content, 422, "source", "unknown source 'openpose2'; expected auto or one of motionlift"),
        ("?flip=yes", content, 422, "flip", "must be true or false, got 'yes'"),
        ("?size=3", content, 422, "size", "unknown parameter; expected source or one of format"),
        ("", content, 422, "min_track_frames", "no track has 30 detected frames (min_track_frames); the longest has"),
        ("?min_track_frames=0", content, 422, "min_track_frames", "min_track_frames must be at least 1, got 0"),
        ("?min_track_frames=1&person=nobody", content, 422, "person", "person: no track 'nobody' among those kept"),
        ("", b"{not json", 400, "file", "the file is not JSON: "),
        ("", b"", 422, "file", "the file is empty"),
        ("", b'{"hello": 1}', 422, "file", "unknown layout"),
        ("?source=mediapipe", (FIXTURES / "detectors" / "mmpose_inferencer.json").read_bytes(), 422, "file", ""),
    ]
    for suffix, body, status, field, message in cases:
        r = httpx.post(f"{url}/lift/file{suffix}", content=body, timeout=30)
        assert r.status_code == status, (suffix, r.text)
        error = r.json()["error"]
        assert error["field"] == field and error["message"].startswith(message), (suffix, error)
        assert error["request_id"] == r.headers["x-request-id"]


def test_a_multipart_body_without_the_file_or_broken_is_refused_naming_file(served: Served) -> None:
    url = served.rest_url
    no_file = httpx.post(f"{url}/lift/file", files={"other": ("x.json", b"{}")}, timeout=30)
    assert no_file.status_code == 422
    assert no_file.json()["error"]["message"] == "send the file in the multipart field 'file' (curl -F file=@...)"
    broken = httpx.post(
        f"{url}/lift/file",
        content=b"--b\r\nContent-Disposition: form-data; name=file\r\n\r\n" + b"x" * 10,
        headers={"content-type": "multipart/form-data; boundary=b"},
        timeout=30,
    )
    assert broken.status_code in (400, 422) and broken.json()["error"]["field"] == "file", broken.text


def test_a_large_file_is_read_in_a_reader_process_and_its_mistakes_still_name_the_element(served: Served) -> None:
    from service.api.rest.reader import PROCESS_BYTES
    from tests.data import walk

    frames = walk(1900)
    detections: list[dict[str, Any]] = [  # two people, 5,000 px apart, no ids: the reader tracks them
        {"image_id": f, "category_id": 1, "keypoints": [v for x, y, s in pose for v in (x + dx, y, s)], "score": 0.9}
        for f, pose in enumerate(frames)
        for dx in (0.0, 5000.0)
    ]
    content = json.dumps(detections).encode()
    assert len(content) > PROCESS_BYTES  # read by a body reader process, off the loop's GIL
    ok = httpx.post(f"{served.rest_url}/lift/file?source=coco&image_size=1920,1080", content=content, timeout=60)
    assert ok.status_code == 200, ok.text
    assert [(t["start"], t["frames"], t["filled"]) for t in ok.json()["tracks"]] == [(0, 1900, [])] * 2
    detections[5]["keypoints"][4] = -0.5  # becomes a NaN score below, inside a large file
    bad = json.dumps(detections).encode().replace(b"-0.5", b"NaN")
    refused = httpx.post(f"{served.rest_url}/lift/file?source=coco", content=bad, timeout=60)
    assert refused.status_code in (400, 422) and refused.json()["error"]["field"] == "file", refused.text
