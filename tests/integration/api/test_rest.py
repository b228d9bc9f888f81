"""POST /lift and friends through a real uvicorn server on 127.0.0.1 serving the exported tiny model."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest

from service.core.keypoints import JOINT_NAMES
from tests.data import FIXTURES, Golden, project, walk


def post(url: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/lift", json=body, timeout=60, **kwargs)


def test_health_ready_and_model(rest_url: str) -> None:
    assert httpx.get(f"{rest_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{rest_url}/readyz")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    model = httpx.get(f"{rest_url}/v1/model").json()
    assert model["config"] == "tiny"
    assert model["params"] == 294_023
    assert model["window"] == 243
    assert model["joint_names"] == list(JOINT_NAMES)
    assert (model["trained"], model["weights"], model["precision"], model["device"]) == (
        True,
        "tiny_official.bin",
        "fp32",
        "cpu",
    )
    assert "/lift" in httpx.get(f"{rest_url}/openapi.json").json()["paths"]
    assert httpx.get(f"{rest_url}/docs").status_code == 200


def test_minimal_request_answers_joints_and_latency(rest_url: str) -> None:
    r = post(rest_url, {"keypoints": walk(30), "format": "coco", "image_size": [1920, 1080]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert np.asarray(body["joints3d"]).shape == (30, 17, 3)
    assert np.asarray(body["joints3d_px"]).shape == (30, 17, 3)
    assert body["frames"] == 30
    assert body["joint_names"] == list(JOINT_NAMES)
    assert set(body["coordinates"]) == {"units", "space", "root", "axes"}
    lat = body["latency_ms"]
    assert set(lat) == {"preprocess", "queue", "inference", "postprocess", "total"}
    assert all(v >= 0 for v in lat.values())
    parts = lat["preprocess"] + lat["queue"] + lat["inference"] + lat["postprocess"]
    assert parts <= lat["total"] + 0.01
    assert lat["inference"] > 0
    assert (body["windows"], body["batches"]) == (2, 1)  # one window and its flipped copy, batched together
    assert body["batch_size"] == 2
    assert r.headers["x-request-id"] == body["request_id"]


@pytest.mark.parametrize("mode", ["crop", "pixel"])
def test_official_clipping_equals_infer_wild(rest_url: str, golden: Golden, mode: str) -> None:
    """overlap=0 is the official infer_wild.py: 243 + 57 frame clips, flip TTA, root depth 0 per clip."""
    w, h = (int(v) for v in golden["wild_image_wh"])
    body: dict[str, Any] = {"keypoints": golden["wild_halpe26"].tolist(), "format": "halpe26", "overlap": 0}
    if mode == "pixel":
        body["image_size"] = [w, h]
    r = post(rest_url, body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["windows"] == 4  # 2 clips + their flipped copies
    got = np.asarray(out["joints3d_px" if mode == "pixel" else "joints3d"])
    want = golden[f"tiny_wild_out_{mode}"]
    assert got.shape == want.shape == (300, 17, 3)
    # Answers are float32 values.
    tolerance = 1e-3 if mode == "pixel" else 1e-4
    assert np.abs(got - want).max() <= tolerance


def test_long_sequence_keeps_every_frame(rest_url: str) -> None:
    r = post(rest_url, {"keypoints": walk(1000), "format": "h36m", "image_size": [1920, 1080], "flip": False})
    assert r.status_code == 200, r.text
    body = r.json()
    assert np.asarray(body["joints3d"]).shape == (1000, 17, 3)
    # 243-frame windows overlapping by >= 60 frames: ceil((1000 - 243) / 183) + 1 = 6 windows.
    assert body["windows"] == 6


def test_same_answer_alone_beside_others_and_concurrently(rest_url: str) -> None:
    seq = walk(100)
    alone = post(rest_url, {"keypoints": seq, "format": "coco", "image_size": [1920, 1080]}).json()
    other = walk(100, 17)[::-1]
    multi = post(
        rest_url,
        {
            "tracks": [{"id": "a", "keypoints": other}, {"id": 7, "keypoints": seq}],
            "format": "coco",
            "image_size": [1920, 1080],
        },
    )
    assert multi.status_code == 200, multi.text
    tracks = multi.json()["tracks"]
    assert [t["id"] for t in tracks] == ["a", 7]
    assert [t["frames"] for t in tracks] == [100, 100]
    assert tracks[1]["joints3d"] == alone["joints3d"]
    assert tracks[1]["joints3d_px"] == alone["joints3d_px"]
    assert tracks[0]["joints3d"] != alone["joints3d"]

    async def many() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=rest_url, timeout=60) as client:
            bodies = [
                {"keypoints": seq if i % 2 else other, "format": "coco", "image_size": [1920, 1080]} for i in range(8)
            ]
            answers = await asyncio.gather(*(client.post("/lift", json=b) for b in bodies))
        return [a.json() for a in answers]

    answers = asyncio.run(many())
    assert all(a["joints3d"] == alone["joints3d"] for a in answers[1::2])
    assert max(a["batch_size"] for a in answers) > 2  # they really were batched together


def test_real_motion_through_overlapping_windows_has_no_step(rest_url: str) -> None:
    """Real motion (CMU mocap, projected), 486 frames = 3 overlapping windows: no frame-to-frame step stands out.

    The merge itself is proven seamless on disagreeing windows in tests/unit/test_windows.py.
    """
    with np.load(FIXTURES / "mocap_cmu_martial06.npz") as z:
        xy = project(z["joints3d_mm"][:486])
    body = {"keypoints": xy.tolist(), "format": "h36m", "image_size": [1920, 1080], "flip": False}
    answer = post(rest_url, body).json()
    assert answer["windows"] == 3
    step = np.linalg.norm(np.diff(np.asarray(answer["joints3d"]), axis=0), axis=-1).mean(axis=-1)
    assert step.max() < 3 * np.median(step)
