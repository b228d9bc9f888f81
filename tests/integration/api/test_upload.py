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


def _tracks(tracks: list[dict[str, Any]]) -> dict[str, tuple[int, list[int], np.ndarray]]:  # type: ignore[type-arg]
    return {str(t["id"]): (t["start"], list(t["filled"]), np.asarray(t["joints3d"], np.float32)) for t in tracks}


def _answered(answer: Any) -> dict[str, tuple[int, list[int], np.ndarray]]:  # type: ignore[type-arg]
    return {t.id: (t.start, list(t.filled), t.joints3d) for t in answer.tracks}


def test_an_uploaded_file_is_answered_as_every_other_path_answers_it(served: Served, tmp_path: Path) -> None:
    """One file, one track policy (min_track_frames 3 drops track 0, seen in one frame): the upload, the raw body,
    /lift's JSON with each track's start and the policy, gRPC and REST through the client, and the CLI give the
    same tracks, starts, filled frames and joints."""
    url = served.rest_url
    query = {"image_size": "1920,1080", "min_track_frames": "3"}  # a 4-frame file: a second of video is 30
    with ALPHAPOSE.open("rb") as f:
        upload = httpx.post(f"{url}/lift/file", params=query, files={"file": ("results.json", f)}, timeout=60)
    assert upload.status_code == 200, upload.text
    got = upload.json()
    read = read_keypoints(ALPHAPOSE)
    assert got["input"] == {"source": "alphapose", "format": read.layout, "frames": read.frames}
    kept = [t for t in read.tracks if t.detected.sum() >= 3]
    assert [(t.id, t.start, len(t.keypoints)) for t in read.tracks] == [("1", 0, 4), ("2", 0, 4), ("0", 1, 1)]
    assert [(t["id"], t["start"], t["frames"], t["filled"]) for t in got["tracks"]] == [
        ("1", 0, 4, []),
        ("2", 0, 4, [kept[1].start + int(i) for i in np.flatnonzero(~kept[1].detected)]),
    ]
    assert got["tracks"][1]["filled"] == [2]  # person 2 is missing from frame 2: filled, not detected
    uploaded = _tracks(got["tracks"])

    raw = httpx.post(
        f"{url}/lift/file?source=alphapose&image_size=1920,1080&min_track_frames=3",
        content=ALPHAPOSE.read_bytes(),
        timeout=60,
    )
    sent = [{"id": t.id, "start": t.start, "keypoints": t.keypoints.tolist()} for t in read.tracks]
    body = {"tracks": sent, "format": read.layout, "image_size": list(SIZE), "min_track_frames": 3}
    as_json = httpx.post(f"{url}/lift", json=body, timeout=60)
    by_client = {t.id: {"keypoints": t.keypoints, "start": t.start} for t in read.tracks}
    answers = {}
    for name, client in (("gRPC", MotionLiftClient(grpc=served.grpc_target)), ("REST client", MotionLiftClient(url))):
        with client:
            answer = client.lift(tracks=by_client, format=read.layout, image_size=SIZE, min_track_frames=3)
        answers[name] = _answered(answer)
    out = tmp_path / "cli.json"
    flags = ["--image-size", "1920", "1080", "--min-track-frames", "3", "--out", str(out)]
    assert main(["lift", str(ALPHAPOSE), "--url", url, *flags]) == 0
    answers.update({
        "raw body": _tracks(raw.json()["tracks"]),
        "/lift JSON": _tracks(as_json.json()["tracks"]),
        "CLI": _tracks(json.loads(out.read_text())["tracks"]),
    })  # fmt: skip
    for name, other in answers.items():
        assert other.keys() == uploaded.keys(), name
        for tid, (start, filled, joints) in uploaded.items():
            assert other[tid][:2] == (start, filled), name
            np.testing.assert_array_equal(other[tid][2], joints, err_msg=name)


def test_upload_mistakes_name_the_field(served: Served) -> None:
    url = served.rest_url
    content = ALPHAPOSE.read_bytes()
    cases = [
        ("?source=openpose2", content, 422, "source", "unknown source 'openpose2'; expected auto or one of motionlift"),
        ("?flip=yes", content, 422, "flip", "must be true or false, got 'yes'"),
        ("?size=3", content, 422, "size", "unknown parameter; expected source or one of format"),
        ("", content, 422, "min_track_frames", "no track has 30 detected frames; the longest has"),
        ("?min_track_frames=0", content, 422, "min_track_frames", "min_track_frames must be between 1 and 1000000"),
        ("?max_gap_frames=-2", content, 422, "max_gap_frames", "max_gap_frames must be between 0 and 1000000"),
        ("?fps=fast", content, 422, "fps", "must be a number, got 'fast'"),
        (
            "?image_size=1920,1080&root=trajectory&focal_length_px=nan",
            content,
            422,
            "focal_length_px",
            "focal_length_px must be between 1 and 1e+06 pixels, got nan",
        ),
        ("?min_track_frames=1&person=nobody", content, 422, "person", "no track 'nobody' among those kept"),
        ("", b"{not json", 400, "file", "the file is not JSON (nor a zip archive): "),
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


def test_number_options_in_the_query_answer_as_in_a_json_body(served: Served) -> None:
    """Every option reaches the upload's query string typed as /lift's JSON takes it (numbers too)."""
    options = {"min_track_frames": 3, "subject_height_m": 1.7, "smoothing": "one-euro", "smoothing_cutoff": 0.5,
               "fps": 25, "root": "trajectory", "focal_length_px": 1500}  # fmt: skip
    query = {"image_size": "1920,1080", **{k: str(v) for k, v in options.items()}}
    upload = httpx.post(f"{served.rest_url}/lift/file", params=query, content=ALPHAPOSE.read_bytes(), timeout=60)
    assert upload.status_code == 200, upload.text
    read = read_keypoints(ALPHAPOSE)
    sent = [{"id": t.id, "start": t.start, "keypoints": t.keypoints.tolist()} for t in read.tracks]
    body = {"tracks": sent, "format": read.layout, "image_size": list(SIZE), **options}
    as_json = httpx.post(f"{served.rest_url}/lift", json=body, timeout=60).json()
    assert upload.json()["coordinates"] == as_json["coordinates"]
    assert "(focal length 1500 px, given)" in as_json["coordinates"]["root"]
    uploaded, sent_as_json = _tracks(upload.json()["tracks"]), _tracks(as_json["tracks"])
    assert uploaded.keys() == sent_as_json.keys() == {"1", "2"}
    for tid, answer in uploaded.items():
        np.testing.assert_array_equal(sent_as_json[tid][2], answer[2])


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
    # 3,800 frames to lift: seconds on a quiet machine, over a minute beside a training run (a timeout, not a check)
    ok = httpx.post(f"{served.rest_url}/lift/file?source=coco&image_size=1920,1080", content=content, timeout=300)
    assert ok.status_code == 200, ok.text
    assert [(t["start"], t["frames"], t["filled"]) for t in ok.json()["tracks"]] == [(0, 1900, [])] * 2
    detections[5]["keypoints"][4] = -0.5  # becomes a NaN score below, inside a large file
    bad = json.dumps(detections).encode().replace(b"-0.5", b"NaN")
    refused = httpx.post(f"{served.rest_url}/lift/file?source=coco", content=bad, timeout=60)
    assert refused.status_code in (400, 422) and refused.json()["error"]["field"] == "file", refused.text


def test_a_zipped_openpose_folder_is_lifted_as_the_cli_lifts_the_folder(served: Served, tmp_path: Path) -> None:
    """OpenPose writes a folder, which no HTTP body can be: its zip is, by multipart or raw, and gives the joints and
    frame ids the CLI gives for the folder itself."""
    from tests.unit.formats.test_archive import openpose_zip

    query = "image_size=1920,1080&min_track_frames=1"
    content = openpose_zip()
    multipart = httpx.post(f"{served.rest_url}/lift/file?{query}", files={"file": ("frames.zip", content)}, timeout=60)
    raw = httpx.post(
        f"{served.rest_url}/lift/file?{query}", content=content, headers={"content-type": "application/zip"}, timeout=60
    )
    out = tmp_path / "cli.json"
    folder = str(FIXTURES / "detectors" / "openpose")
    flags = ["--image-size", "1920", "1080", "--min-track-frames", "1", "--out", str(out)]
    assert main(["lift", folder, "--url", served.rest_url, *flags]) == 0
    cli = json.loads(out.read_text())
    for answer in (multipart, raw):
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert got["input"] == {"source": "openpose", "format": "coco", "frames": 3}
        assert got["frame_ids"] == cli["frame_ids"] == [f"clip_00000000000{i}_keypoints.json" for i in range(3)]
        assert _tracks(got["tracks"]).keys() == _tracks(cli["tracks"]).keys()
        for tid, (start, filled, joints) in _tracks(cli["tracks"]).items():
            assert _tracks(got["tracks"])[tid][:2] == (start, filled)
            np.testing.assert_array_equal(_tracks(got["tracks"])[tid][2], joints)
    bomb = zipfile_bomb()
    refused = httpx.post(f"{served.rest_url}/lift/file", content=bomb, timeout=60).json()["error"]
    assert (refused["field"], refused["message"]) == ("file", "the archive's JSON files unpack to more than 64 MiB")


def zipfile_bomb() -> bytes:
    from service.formats.archive import MAX_UNPACKED
    from tests.unit.formats.test_archive import zipped

    return zipped({"bomb_keypoints.json": b" " * (MAX_UNPACKED + 1)})


def test_echo_input_returns_the_tracks_as_read(served: Served) -> None:
    """The viewer draws the 2D input beside the 3D: ``echo_input=true`` gives the file's tracks as the readers read
    them (the same as ``motionlift lift`` reads), ids and starts included."""
    query = "image_size=1920,1080&min_track_frames=1&echo_input=true"
    got = httpx.post(f"{served.rest_url}/lift/file?{query}", content=ALPHAPOSE.read_bytes(), timeout=60).json()
    read = read_keypoints(ALPHAPOSE)
    echoed = got["input"]["tracks"]
    assert [(t["id"], t["start"]) for t in echoed] == [(t.id, t.start) for t in read.tracks]
    for sent, track in zip(echoed, read.tracks, strict=True):
        np.testing.assert_array_equal(np.asarray(sent["keypoints"], np.float32), track.keypoints)
    plain = httpx.post(f"{served.rest_url}/lift/file?image_size=1920,1080&min_track_frames=1",
                       content=ALPHAPOSE.read_bytes(), timeout=60).json()  # fmt: skip
    assert "tracks" not in plain["input"]
    bad = httpx.post(f"{served.rest_url}/lift/file?echo_input=yes", content=ALPHAPOSE.read_bytes(), timeout=60)
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "echo_input")
