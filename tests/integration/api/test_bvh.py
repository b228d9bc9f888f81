"""BVH answers through the real service and the CLI: ``Accept: application/x-bvh`` on ``POST /lift`` and
``motionlift lift --out motion.bvh`` give files an independent reader (bvhio) takes, whose forward kinematics point
every limb bone along the JSON answer's; several tracks are 406 over REST and one file each from the CLI."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

from service.cli import main
from service.motion import bvh
from tests.conftest import Served
from tests.data import FIXTURES, walk
from tests.unit.motion.test_bvh import forward

BODY = {"keypoints": walk(40), "format": "coco", "image_size": [1920, 1080]}
LIMBS = (2, 3, 5, 6, 8, 10, 12, 13, 15, 16)  # bones set by a one-bone joint's rotation: their direction is exact


def test_accept_bvh_answers_the_track_as_a_bvh_file(served: Served, tmp_path: Path) -> None:
    url = served.rest_url
    as_json = httpx.post(f"{url}/lift", json=BODY, timeout=60).json()
    answer = httpx.post(f"{url}/lift?fps=25", json=BODY, headers={"accept": "application/x-bvh"}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-bvh"
    assert answer.headers["content-disposition"] == 'attachment; filename="0.bvh"'
    assert "Frames: 40\nFrame Time: 0.040000\n" in answer.text
    path = tmp_path / "answer.bvh"
    path.write_text(answer.text)
    world = forward(path, 40)
    joints = bvh.to_bvh_axes(np.asarray(as_json["joints3d"], np.float64))
    for child in LIMBS:
        parent = bvh.PARENTS[child]
        got, want = world[:, child] - world[:, parent], joints[:, child] - joints[:, parent]
        cosine = np.sum(got * want, -1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
        assert cosine.min() > 1 - 1e-6, child  # the same direction in every frame


def test_bvh_mistakes_are_named(served: Served) -> None:
    url, accept = served.rest_url, {"accept": "application/x-bvh"}
    two = {"tracks": [{"keypoints": walk(27)}, {"keypoints": walk(27)}], "format": "coco", "image_size": [640, 480]}
    error = httpx.post(f"{url}/lift", json=two, headers=accept, timeout=60)
    assert error.status_code == 406
    assert error.json()["error"]["code"] == "not_acceptable" and error.json()["error"]["field"] == "accept"
    assert error.json()["error"]["message"].startswith("a BVH file holds one track and the answer has 2")
    mistakes = [
        ("fps=0", "fps", "fps must be in (0, 1000], got 0"),
        ("height_m=tall", "height_m", "must be a number, got 'tall'"),
        ("height_m=9", "height_m", "between 0.3 and 3.0"),
    ]
    for query, field, words in mistakes:
        for headers in (accept, {}):  # checked whatever the answer's type: out of range is a mistake either way
            refused = httpx.post(f"{url}/lift?{query}", json=BODY, headers=headers, timeout=60).json()["error"]
            assert refused["field"] == field and words in refused["message"], refused


def test_the_cli_writes_one_bvh_per_track(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "motion.bvh"
    source = str(FIXTURES / "detectors" / "alphapose_halpe26_tracked.json")
    flags = ["--image-size", "1920", "1080", "--min-track-frames", "3", "--fps", "24", "--out", str(out)]
    assert main(["lift", source, "--url", served.rest_url, *flags]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.bvh"))
    assert written == ["motion_1.bvh", "motion_2.bvh"]
    for name in written:
        text = (tmp_path / name).read_text()
        assert "Frames: 4\nFrame Time: 0.041667\n" in text
        assert forward(tmp_path / name, 4).shape == (4, 17, 3)
