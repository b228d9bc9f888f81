"""One rule for detector scores above 1 (AlphaPose writes 1.009; RTMPose's SimCC confidences exceed 1): they count
as 1. The same sequence with such scores gets exactly the answer it gets with the scores at 1.0, over REST,
gRPC ``Lift``, a ``LiftStream``, the Python client and ``motionlift lift`` -- never a 422 on one path and an
answer on another."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import numpy.typing as npt

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.api.pb.motionlift.v1 import lift_pb2_grpc
from service.cli import main
from service.client import MotionLiftClient
from tests.conftest import Served
from tests.data import walk
from tests.rpc import SIZE, joints, keypoints

F32 = npt.NDArray[np.float32]
OVER = 1.009


def pair(frames: int = 30) -> tuple[F32, F32]:
    """A COCO sequence with scores of 1.009 on several joints, and the same with those scores at 1.0."""
    high = np.asarray(walk(frames), np.float32)
    high[:, [0, 5, 11, 16], 2] = OVER
    high[3, :, 2] = OVER
    ones = high.copy()
    ones[..., 2] = np.minimum(ones[..., 2], 1.0)
    return high, ones


def test_rest(served: Served) -> None:
    answers = []
    for sequence in pair():
        body = {"keypoints": sequence.tolist(), "format": "coco", "image_size": [1920, 1080]}
        r = httpx.post(f"{served.rest_url}/lift", json=body, timeout=60)
        assert r.status_code == 200, r.text
        answers.append(np.asarray(r.json()["joints3d"], np.float32))
    np.testing.assert_array_equal(answers[0], answers[1])


def test_grpc_lift(served: Served) -> None:
    answers = []
    with grpc.insecure_channel(served.grpc_target) as channel:
        stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
        for sequence in pair():
            request = pb.LiftRequest(
                tracks=[pb.Track(keypoints=keypoints(sequence))], format=pb.FORMAT_COCO, image_size=SIZE
            )
            answers.append(joints(stub.Lift(request, timeout=60).tracks[0].joints3d))
    np.testing.assert_array_equal(answers[0], answers[1])


def _stream(stub: Any, sequence: F32) -> F32:
    """A causal stream in lockstep (the next frame once the last one is answered): nothing is skipped."""

    def requests() -> Any:
        yield pb.StreamRequest(config=pb.StreamConfig(format=pb.FORMAT_COCO, image_size=SIZE, window=8))
        for pose in sequence:
            track = pb.TrackFrame(track_id="a", joints=17, channels=3, keypoints=pose.ravel())
            yield pb.StreamRequest(frame=pb.StreamFrame(tracks=[track]))
            answered.wait(30)
            answered.clear()

    answered = threading.Event()
    out = []
    for response in stub.LiftStream(requests(), timeout=60):
        if response.WhichOneof("kind") == "frame":
            assert response.frame.skipped == 0
            out.append(joints(response.frame.joints3d)[0])
            answered.set()
    return np.stack(out)


def test_stream(served: Served) -> None:
    with grpc.insecure_channel(served.grpc_target) as channel:
        stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
        high, ones = (_stream(stub, sequence) for sequence in pair(12))
    assert high.shape == (12, 17, 3)
    np.testing.assert_array_equal(high, ones)


def test_python_client(served: Served) -> None:
    high, ones = pair()
    for target in ({"url": served.rest_url}, {"grpc": served.grpc_target}):
        with MotionLiftClient(**target) as client:  # type: ignore[arg-type]
            a, b = (client.lift(s, format="coco", image_size=(1920, 1080)).joints3d for s in (high, ones))
        np.testing.assert_array_equal(a, b)


def _alphapose_file(path: Path, sequence: F32) -> Path:
    """``sequence`` (COCO-17) as AlphaPose writes it: one detection per frame, flat [x, y, score] * 17."""
    detections = [
        {"image_id": f"{t}.jpg", "category_id": 1, "keypoints": pose.ravel().tolist(), "score": 2.9, "idx": [[0.0]]}
        for t, pose in enumerate(sequence)
    ]
    path.write_text(json.dumps(detections))
    return path


def test_cli(served: Served, tmp_path: Path) -> None:
    answers = []
    for name, sequence in zip(("high", "ones"), pair(), strict=True):
        source = _alphapose_file(tmp_path / f"{name}.json", sequence)
        out = tmp_path / f"{name}.npy"
        code = main(["lift", str(source), "--url", served.rest_url, "--image-size", "1920", "1080", "--out", str(out)])
        assert code == 0
        answers.append(np.load(out))
    assert answers[0].shape == (30, 17, 3)
    np.testing.assert_array_equal(answers[0], answers[1])
