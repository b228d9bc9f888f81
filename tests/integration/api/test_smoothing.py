"""Smoothing through the real service: REST and gRPC (through the client) answer the same smoothed joints, with less
jitter than the raw answer and pixels that agree with them; a stream refuses smoothing, naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from service.client import MotionLiftClient
from service.core.options import StreamOptions
from service.errors import InvalidInput
from tests.conftest import Served
from tests.data import walk
from tests.unit.core.test_smoothing import jitter

NOISY = np.asarray(walk(81), np.float32) + np.random.default_rng(5).normal(scale=[3.0, 3.0, 0.0], size=(81, 17, 3))
BODY: dict[str, Any] = {"keypoints": NOISY.round(2).tolist(), "format": "coco", "image_size": [1920, 1080]}


@pytest.mark.parametrize("smoothing", [{"smoothing": "savgol", "smoothing_window": 15}, {"smoothing": "one-euro"}])
def test_smoothed_answers_agree_across_protocols_and_jitter_less(served: Served, smoothing: dict[str, Any]) -> None:
    raw = httpx.post(f"{served.rest_url}/lift", json=BODY, timeout=60).json()
    smooth = httpx.post(f"{served.rest_url}/lift", json={**BODY, **smoothing}, timeout=60).json()
    joints, smoothed = (np.asarray(a["joints3d"], np.float32) for a in (raw, smooth))
    assert jitter(smoothed) < jitter(joints) / 2
    pixels = np.asarray(smooth["joints3d_px"], np.float32)
    np.testing.assert_allclose(pixels[..., :2], smoothed[..., :2] * 540 + [960, 540], atol=1e-2)  # derived after
    with MotionLiftClient(grpc=served.grpc_target) as client:
        answer = client.lift(BODY["keypoints"], format="coco", image_size=(1920, 1080), **smoothing)
    np.testing.assert_array_equal(answer.joints3d, smoothed)


def test_a_stream_takes_no_smoothing_yet() -> None:
    with pytest.raises(InvalidInput) as caught:
        StreamOptions.from_mapping({"format": "coco", "image_size": [640, 480], "smoothing": "one-euro"})
    assert caught.value.field == "config.smoothing"
    assert "smoothing are for whole sequences" in caught.value.message


def test_the_cli_smooths_as_the_service_does(served: Served, tmp_path: Any) -> None:
    import json

    from service.cli import main

    source, out = tmp_path / "noisy.json", tmp_path / "out.json"
    source.write_text(json.dumps(BODY))
    flags = ["--smoothing", "savgol", "--smoothing-window", "15", "--fps", "25", "--out", str(out)]
    assert main(["lift", str(source), "--url", served.rest_url, *flags]) == 0
    rest = httpx.post(f"{served.rest_url}/lift", json={**BODY, "smoothing": "savgol", "smoothing_window": 15}).json()
    np.testing.assert_array_equal(
        np.asarray(json.loads(out.read_text())["joints3d"], np.float32), np.asarray(rest["joints3d"], np.float32)
    )


def test_subject_height_gives_metres_on_rest_and_grpc(served: Served) -> None:
    """``subject_height_m``: joints3d in metres (the chain 0.941 x the height), pixels as without it, the units said."""
    from service.core.scale import CHAIN_FRACTION, chain

    plain = httpx.post(f"{served.rest_url}/lift", json=BODY, timeout=60).json()
    tall = httpx.post(f"{served.rest_url}/lift", json={**BODY, "subject_height_m": 1.8}, timeout=60).json()
    metres = np.asarray(tall["joints3d"], np.float32)
    assert chain(metres) == pytest.approx(CHAIN_FRACTION * 1.8, rel=1e-4)
    np.testing.assert_array_equal(np.asarray(tall["joints3d_px"]), np.asarray(plain["joints3d_px"]))
    assert tall["coordinates"]["units"].startswith("joints3d: metres, each track scaled once")
    with MotionLiftClient(grpc=served.grpc_target) as client:
        answer = client.lift(BODY["keypoints"], format="coco", image_size=(1920, 1080), subject_height_m=1.8)
    np.testing.assert_array_equal(answer.joints3d, metres)
    error = httpx.post(f"{served.rest_url}/lift", json={**BODY, "subject_height_m": 4}, timeout=60).json()["error"]
    assert (error["field"], error["message"]) == (
        "subject_height_m",
        "subject_height_m must be between 0.5 and 2.5, got 4.0",
    )
