"""The track policy and track start frames through the real service, by REST's JSON body and by gRPC ``Lift``: the
same tracks kept, cut and named, the same ``start`` and ``filled`` frames, the same joints; its mistakes are 422 /
INVALID_ARGUMENT naming the field."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.api.pb.motionlift.v1 import lift_pb2_grpc
from service.core.stream_options import StreamOptions
from service.errors import InvalidInput
from tests.conftest import Served
from tests.data import walk
from tests.rpc import SIZE, joints, keypoints

# Person 7 (an integer id, echoed as one) is lost for frames 12-19 (8 frames) and not yet detected in frames 0-1;
# "kid" is seen in 6 frames only. The sequences start at video frame 50.
WALKER = np.asarray(walk(40), np.float32)
WALKER[[0, 1, *range(12, 20)], :, 2] = 0.0
KID = np.asarray(walk(6), np.float32) * np.asarray([0.5, 0.5, 1.0], np.float32)
POLICY: dict[str, Any] = {"min_track_frames": 8, "max_gap_frames": 5}


def _rest(url: str, **fields: Any) -> httpx.Response:
    tracks = [
        {"id": 7, "start": 50, "keypoints": WALKER.tolist()},
        {"id": "kid", "start": 50, "keypoints": KID.tolist()},
    ]
    body = {"tracks": tracks, "format": "coco", "image_size": [1920, 1080], **fields}
    return httpx.post(f"{url}/lift", json=body, timeout=60)


def _grpc(target: str, **fields: Any) -> pb.LiftResponse:
    request = pb.LiftRequest(
        tracks=[
            pb.Track(id="7", start=50, keypoints=keypoints(WALKER)),
            pb.Track(id="kid", start=50, keypoints=keypoints(KID)),
        ],
        format=pb.FORMAT_COCO,
        image_size=SIZE,
        **fields,
    )
    with grpc.insecure_channel(target) as channel:
        response: pb.LiftResponse = lift_pb2_grpc.LifterStub(channel).Lift(request, timeout=60)  # type: ignore[no-untyped-call]
    return response


def test_the_policy_cuts_drops_and_names_tracks_alike_over_rest_and_grpc(served: Served) -> None:
    answer = _rest(served.rest_url, **POLICY)
    assert answer.status_code == 200, answer.text
    rest = answer.json()["tracks"]
    # Cut at the 8-frame gap: frames 52-61 (10 detected) and 70-89 (20); the kid's 6 frames are under 8.
    assert [(t["id"], t["start"], t["frames"], t["filled"]) for t in rest] == [(7, 52, 10, []), ("7-2", 70, 20, [])]
    rpc = _grpc(served.grpc_target, **POLICY).tracks
    assert [(t.id, t.start, t.joints3d.frames, list(t.filled)) for t in rpc] == [("7", 52, 10, []), ("7-2", 70, 20, [])]
    for a, b in zip(rest, rpc, strict=True):
        np.testing.assert_array_equal(np.asarray(a["joints3d"], np.float32), joints(b.joints3d))
    whole = _rest(served.rest_url, max_gap_frames=8).json()["tracks"]  # a gap of 8 stays inside: filled
    assert [(t["id"], t["start"], t["frames"], t["filled"]) for t in whole] == [
        (7, 52, 38, list(range(62, 70))),
        ("kid", 50, 6, []),
    ]
    central = _rest(served.rest_url, person="largest").json()["tracks"]
    assert [(t["id"], t["start"], t["frames"], t["filled"][:3]) for t in central] == [(7, 50, 40, [50, 51, 62])]


def test_without_a_policy_tracks_are_lifted_whole_and_their_undetected_frames_listed(served: Served) -> None:
    rest = _rest(served.rest_url).json()["tracks"]
    assert [(t["id"], t["start"], t["frames"], t["filled"]) for t in rest] == [
        (7, 50, 40, [50, 51, *range(62, 70)]),
        ("kid", 50, 6, []),
    ]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"min_track_frames": 41}, "min_track_frames", "no track has 41 detected frames; the longest has 30"),
        ({"person": "nobody"}, "person", "no track 'nobody' among those kept (7, kid); or use one of all, longest"),
        ({"min_track_frames": 0}, "min_track_frames", "min_track_frames must be between 1 and 1000000, got 0"),
        ({"max_gap_frames": -1}, "max_gap_frames", "max_gap_frames must be between 0 and 1000000, got -1"),
        ({"person": ""}, "person", "person is all, longest, largest, most-central or a track id of 1 to 128"),
    ],
)
def test_policy_mistakes_name_the_field_over_rest_and_grpc(
    served: Served, fields: dict[str, Any], field: str, message: str
) -> None:
    error = _rest(served.rest_url, **fields).json()["error"]
    assert (error["field"], error["message"][: len(message)]) == (field, message)
    with pytest.raises(grpc.RpcError) as caught:
        _grpc(served.grpc_target, **fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(f"{field}: {message}")


def test_start_and_the_policy_are_checked_where_they_cannot_apply(served: Served) -> None:
    one = httpx.post(
        f"{served.rest_url}/lift", json={"keypoints": walk(5), "format": "coco", "person": "longest"}, timeout=60
    )
    assert one.status_code == 422
    assert (one.json()["error"]["field"], one.json()["error"]["message"]) == (
        "person",
        "the track policy chooses among tracks: send tracks, not keypoints",
    )
    for start, message in ((-1, "start is a video frame from 0 to 2147483647, got -1"),
                           (1.5, "must be an integer (the video frame the track starts at), got 1.5")):  # fmt: skip
        body = {"tracks": [{"keypoints": walk(5), "start": start}], "format": "coco"}
        error = httpx.post(f"{served.rest_url}/lift", json=body, timeout=60).json()["error"]
        assert (error["field"], error["message"]) == ("tracks[0].start", message)
    with pytest.raises(InvalidInput) as caught:
        StreamOptions.from_mapping({"format": "coco", "image_size": [640, 480], "person": "longest"})
    assert caught.value.field == "config.person"
