"""``root: "trajectory"`` through the real service: the answer is the root-relative answer placed on the pelvis
path that ``service.core.trajectory`` computes from the request's own 2D keypoints; REST and gRPC agree; the
assumptions are stated in ``coordinates.root``; mistakes name the field."""

from __future__ import annotations

import math
from typing import Any

import httpx
import numpy as np

from service.client import MotionLiftClient
from service.core.keypoints import normalise
from service.core.options import LiftOptions
from service.core.trajectory import place
from tests.conftest import Served
from tests.data import walk

KEYPOINTS = walk(40)
BODY: dict[str, Any] = {"keypoints": KEYPOINTS, "format": "coco", "image_size": [1920, 1080], "subject_height_m": 1.7}


def joints(answer: dict[str, Any]) -> np.ndarray:  # type: ignore[type-arg]
    return np.asarray(answer["joints3d"], np.float32)


def test_the_trajectory_places_the_root_relative_answer_on_the_pelvis_path(served: Served) -> None:
    url = f"{served.rest_url}/lift"
    relative = httpx.post(url, json={**BODY, "root": "relative"}, timeout=60).json()
    placed = httpx.post(url, json={**BODY, "root": "trajectory", "focal_length_px": 1200}, timeout=60).json()
    about = joints(placed) - joints(placed)[:, :1]
    np.testing.assert_allclose(about, joints(relative), atol=1e-5)  # the same pose about the pelvis
    options = LiftOptions("coco", (1920.0, 1080.0))
    inputs = normalise(np.asarray(KEYPOINTS, np.float32), options, field="keypoints")
    path = place(joints(relative), inputs, (1920.0, 1080.0), 1200.0, field="keypoints")
    np.testing.assert_allclose(joints(placed)[:, 0], path, rtol=1e-4, atol=1e-5)
    assert placed["coordinates"]["root"].startswith("the pose about the pelvis, placed at the pelvis' estimated")
    assert "(focal length 1200 px, given)" in placed["coordinates"]["root"]
    assert placed["coordinates"]["units"].startswith("joints3d: metres")
    image = httpx.post(url, json=BODY, timeout=60).json()  # the default root: x, y overlay the 2D input
    assert placed["joints3d_px"] == image["joints3d_px"]  # so do a trajectory's pixels
    assumed = httpx.post(url, json={**BODY, "root": "trajectory"}, timeout=60).json()
    diagonal = math.hypot(1920, 1080)
    assert f"(focal length {diagonal:g} px, assumed: the image diagonal)" in assumed["coordinates"]["root"]
    np.testing.assert_allclose(joints(assumed)[:, 0, 2] / path[:, 2], diagonal / 1200, rtol=1e-4)


def test_grpc_answers_the_same_trajectory(served: Served) -> None:
    rest = httpx.post(f"{served.rest_url}/lift", json={**BODY, "root": "trajectory"}, timeout=60).json()
    with MotionLiftClient(grpc=served.grpc_target) as client:
        answer = client.lift(KEYPOINTS, format="coco", image_size=(1920, 1080), subject_height_m=1.7, root="trajectory")
    np.testing.assert_array_equal(answer.joints3d, joints(rest))
    assert answer.coordinates["root"] == rest["coordinates"]["root"]


def test_mistakes_name_the_field(served: Served) -> None:
    url = f"{served.rest_url}/lift"
    no_size = {"keypoints": KEYPOINTS, "format": "coco", "root": "trajectory"}
    reply = httpx.post(url, json=no_size, timeout=60)
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["field"] == "root" and error["message"].startswith("a root trajectory needs image_size")
    reply = httpx.post(url, json={**BODY, "focal_length_px": 1000}, timeout=60)
    assert reply.status_code == 422 and reply.json()["error"]["field"] == "focal_length_px"
