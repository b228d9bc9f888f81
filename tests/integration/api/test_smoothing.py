"""Smoothing through the real service: REST and gRPC (through the client) answer the same smoothed joints, with less
jitter than the raw answer and pixels that agree with them; a gRPC stream smooths frame by frame as declared."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from service.client import MotionLiftClient
from service.core.smoothing import savgol
from service.core.stream_options import StreamOptions
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


def test_a_stream_smooths_over_grpc_as_declared(served: Served) -> None:
    """A savgol stream: StreamStarted declares the hold (window // 2 frames), every frame is answered, each answer
    is the filter over the unsmoothed stream's answers, and the time held is reported per frame."""
    frames = list(NOISY[:40])
    config: dict[str, Any] = {"format": "coco", "image_size": (1920, 1080)}
    with MotionLiftClient(grpc=served.grpc_target) as client:
        raw = list(client.stream(frames, **config))
        stream = client.stream(frames, **config, smoothing="savgol", smoothing_window=9)
        smoothed = list(stream)
    assert stream.started.smoothing == "savgol" and stream.started.smoothing_latency_frames == 4
    assert [a.frame_index for a in smoothed] == list(range(40))
    joints = np.stack([a.joints3d for a in raw])
    got = np.stack([a.joints3d for a in smoothed])
    np.testing.assert_allclose(got, savgol(joints, 9), atol=1e-5)
    assert jitter(got) < jitter(joints) / 2
    pixels = np.stack([np.asarray(a.joints3d_px) for a in smoothed])  # derived from the smoothed joints
    np.testing.assert_allclose(pixels[..., :2], got[..., :2] * 540 + [960, 540], atol=1e-2)
    assert all(a.latency.smoothing_ms >= 0 for a in smoothed)
    assert max(a.latency.smoothing_ms for a in smoothed) > 0  # the held frames waited


def test_a_stream_refuses_metric_scale_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        StreamOptions.from_mapping({"format": "coco", "image_size": [640, 480], "subject_height_m": 1.7})
    assert caught.value.field == "config.subject_height_m"
    assert "are for whole sequences" in caught.value.message


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
