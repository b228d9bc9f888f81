"""API keys and quotas through the real service (uvicorn with its door, and gRPC): strangers get 401 /
UNAUTHENTICATED on REST, unary gRPC, streams and reflection, while probes stay open; a key over its quota gets 429 /
RESOURCE_EXHAUSTED with when to retry, and other keys are unaffected; a revoked key stops working without a
restart; no key ever appears in logs, metrics or error bodies."""

from __future__ import annotations

import contextlib
import io
import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.api.pb.motionlift.v1 import lift_pb2_grpc
from service.cli import main
from service.client import MotionLiftClient
from service.config import Settings
from service.errors import QuotaExceeded, Unauthenticated
from tests.data import walk
from tests.rpc import SIZE, keypoints
from tests.servers import serve_app, until

BODY = {"keypoints": walk(27), "format": "coco", "image_size": [1920, 1080]}


@dataclass
class Secured:
    url: str
    grpc_target: str
    keys: dict[str, str]
    keys_file: Path


def create(keys_file: Path, name: str, *flags: str) -> str:
    """``motionlift keys create``: the key it prints once."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["keys", "--api-keys", str(keys_file), "create", name, *flags]) == 0
    return out.getvalue().strip()


@pytest.fixture(scope="module")
def secured(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    keys_file = tmp_path_factory.mktemp("keys") / "keys.json"
    flags = {"alice": ["--frames-per-s", "10"], "bob": [], "carol": [], "dave": ["--streams", "1"]}
    keys = {name: create(keys_file, name, *more) for name, more in flags.items()}
    settings = Settings(model=tiny_model, api_keys=keys_file, max_frames=2000, refusal_delay_ms=0)
    with serve_app(settings) as (url, app):
        yield Secured(url, f"127.0.0.1:{app.state.grpc.port}", keys, keys_file)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def lift_request() -> pb.LiftRequest:
    return pb.LiftRequest(tracks=[pb.Track(keypoints=keypoints(walk(27)))], format=pb.FORMAT_COCO, image_size=SIZE)


def grpc_error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_strangers_get_401_and_probes_stay_open(secured: Secured) -> None:
    url = secured.url
    for headers, message in (({}, "send an API key: Authorization: Bearer <key>"),
                             (bearer("mlk_not-a-key"), "the API key is not valid (unknown or revoked)"),
                             ({"authorization": secured.keys["bob"]}, "send an API key")):  # fmt: skip
        for method, path in (("POST", "/lift"), ("POST", "/lift/file"), ("GET", "/metrics"), ("GET", "/v1/model")):
            answer = httpx.request(method, f"{url}{path}", json=BODY, headers=headers, timeout=30)
            assert answer.status_code == 401, (path, answer.text)
            assert answer.headers["www-authenticate"] == 'Bearer realm="motionlift"'
            error = answer.json()["error"]
            assert (error["code"], error["message"][: len(message)]) == ("unauthenticated", message)
            assert error["request_id"] == answer.headers["x-request-id"]
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert httpx.get(f"{url}{path}").status_code == 200, path
    document = httpx.get(f"{url}/openapi.json").json()
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    lift = document["paths"]["/lift"]["post"]
    assert lift["security"] == [{"apiKey": []}] and {"401", "429"} <= set(lift["responses"])
    assert "Retry-After" in lift["responses"]["429"]["headers"]
    assert "security" not in document["paths"]["/healthz"]["get"]
    ok = httpx.post(f"{url}/lift", json=BODY, headers=bearer(secured.keys["bob"]), timeout=60)
    assert ok.status_code == 200, ok.text
    assert httpx.get(f"{url}/metrics", headers=bearer(secured.keys["bob"])).status_code == 200


def test_grpc_needs_the_key_in_metadata_for_lift_streams_and_reflection(secured: Secured) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    config = pb.StreamRequest(config=pb.StreamConfig(format=pb.FORMAT_COCO, image_size=SIZE))
    ask = reflection_pb2.ServerReflectionRequest(list_services="")
    with grpc.insecure_channel(secured.grpc_target) as channel:
        stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        for metadata in ((), (("authorization", "Bearer mlk_wrong"),)):
            calls = (
                lambda m=metadata: stub.Lift(lift_request(), timeout=30, metadata=m),
                lambda m=metadata: next(stub.LiftStream(iter([config]), timeout=30, metadata=m)),
                lambda m=metadata: next(reflect.ServerReflectionInfo(iter([ask]), metadata=m)),
            )
            for call in calls:
                assert grpc_error(call).code() == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(channel)
        assert (
            health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
        )
        key = (("authorization", f"Bearer {secured.keys['bob']}"),)
        assert len(stub.Lift(lift_request(), timeout=60, metadata=key).tracks) == 1
    with MotionLiftClient(grpc=secured.grpc_target, api_key=secured.keys["bob"]) as client:
        assert client.lift(walk(27), format="coco", image_size=(1920, 1080)).joints3d.shape == (27, 17, 3)
    with MotionLiftClient(grpc=secured.grpc_target) as client, pytest.raises(Unauthenticated):
        client.lift(walk(27), format="coco", image_size=(1920, 1080))


def test_a_key_over_its_frames_quota_waits_and_others_do_not(secured: Secured) -> None:
    """alice may send 10 frames per second: a 27-frame request takes her bucket 17 frames into debt (1.7 s)."""
    url, alice, bob = secured.url, bearer(secured.keys["alice"]), bearer(secured.keys["bob"])
    assert httpx.post(f"{url}/lift", json=BODY, headers=alice, timeout=60).status_code == 200
    over = httpx.post(f"{url}/lift", json=BODY, headers=alice, timeout=60)
    assert over.status_code == 429, over.text
    assert over.json()["error"]["code"] == "quota_exceeded"
    message = over.json()["error"]["message"]
    assert message.startswith("key 'alice' is over its quota of 10 frames per second; retry in")
    wait = float(message.removeprefix("key 'alice' is over its quota of 10 frames per second; retry in ").split()[0])
    # 1.8 s (17 frames of debt, then one frame's worth) less the time the first request took, as the bucket
    # refills meanwhile; Retry-After rounds it up to whole seconds, never down (a client waiting 1 s of 1.4 s
    # would be refused again)
    assert 0.0 < wait <= 1.8
    assert over.headers["retry-after"] == str(math.ceil(wait))
    assert httpx.post(f"{url}/lift", json=BODY, headers=bob, timeout=60).status_code == 200
    with grpc.insecure_channel(secured.grpc_target) as channel:
        stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]
        metadata = (("authorization", alice["authorization"]),)
        error = grpc_error(lambda: stub.Lift(lift_request(), timeout=30, metadata=metadata))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        trailing = dict(error.trailing_metadata())
        assert 1.0 <= float(trailing["retry-after-s"]) <= 2.0
    with MotionLiftClient(url, api_key=secured.keys["alice"]) as client, pytest.raises(QuotaExceeded) as caught:
        client.lift(walk(27), format="coco", image_size=(1920, 1080))
    assert caught.value.retry_after_s is not None


def test_a_key_with_its_streams_open_gets_no_more(secured: Secured) -> None:
    release = threading.Event()
    config = pb.StreamRequest(config=pb.StreamConfig(format=pb.FORMAT_COCO, image_size=SIZE))

    def held() -> Iterator[pb.StreamRequest]:
        yield config
        release.wait(30)

    with grpc.insecure_channel(secured.grpc_target) as channel:
        stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]
        dave = (("authorization", f"Bearer {secured.keys['dave']}"),)
        first = stub.LiftStream(held(), timeout=60, metadata=dave)
        assert next(first).WhichOneof("kind") == "started"
        error = grpc_error(lambda: next(stub.LiftStream(iter([config]), timeout=30, metadata=dave)))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.details() == "key 'dave' has its quota of 1 streams open; retry when one ends"
        bob = (("authorization", f"Bearer {secured.keys['bob']}"),)
        other = stub.LiftStream(iter([config]), timeout=30, metadata=bob)
        assert next(other).WhichOneof("kind") == "started"  # another key: unaffected
        release.set()
        assert list(first) == []  # the first stream ends normally, and its slot with it
        again = stub.LiftStream(iter([config]), timeout=30, metadata=dave)
        until(lambda: next(again).WhichOneof("kind") == "started", "dave's stream slot to be free")


def test_a_revoked_key_stops_working_without_a_restart(secured: Secured) -> None:
    carol = bearer(secured.keys["carol"])
    assert httpx.post(f"{secured.url}/lift", json=BODY, headers=carol, timeout=60).status_code == 200
    assert main(["keys", "--api-keys", str(secured.keys_file), "revoke", "carol"]) == 0
    until(
        lambda: httpx.post(f"{secured.url}/lift", json=BODY, headers=carol, timeout=60).status_code == 401,
        "the revocation to be read",
    )


def test_no_key_appears_in_logs_metrics_or_errors(secured: Secured, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen = []
    for key in secured.keys.values():
        for headers in (bearer(key), bearer(key + "x")):
            answer = httpx.post(f"{secured.url}/lift", json=BODY, headers=headers, timeout=60)
            seen.append(answer.text + str(dict(answer.headers)))
        with grpc.insecure_channel(secured.grpc_target) as channel:
            stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]
            for metadata in ((("authorization", f"Bearer {key}"),), (("authorization", f"Bearer {key}x"),)):
                try:
                    stub.Lift(lift_request(), timeout=60, metadata=metadata)
                except grpc.RpcError as exc:
                    seen.append(str(exc.details()) + str(exc.trailing_metadata()))
    seen.append(httpx.get(f"{secured.url}/metrics", headers=bearer(secured.keys["bob"])).text)
    chosen = httpx.post(
        f"{secured.url}/lift", json=BODY, headers={**bearer(secured.keys["bob"]), "x-request-id": "audit-1"}
    )
    assert chosen.status_code == 200
    # One audit line per request, naming the key (never holding it), the request id, what and how it went.
    assert "audit key=bob request=audit-1 protocol=rest frames=27 outcome=ok latency_ms=" in caplog.text
    assert "audit key=- request=" in caplog.text and "outcome=unauthenticated" in caplog.text
    for key in secured.keys.values():
        secret = key.removeprefix("mlk_")
        assert secret not in caplog.text
        assert not any(secret in text for text in seen)
