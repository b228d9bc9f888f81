"""A model that answers values that are not finite (a broken export, a bad precision) never reaches a caller as
success: a 500 over REST and INTERNAL over gRPC, with the request id, one error log line and the error counted
(issue 12, "Never an impossible answer")."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AsyncExitStack

import grpc
import httpx
import numpy as np
import pytest

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.api.pb.motionlift.v1 import lift_pb2_grpc
from service.config import Settings
from service.core.backend import Array
from service.core.lifter import Lifter
from tests.data import walk
from tests.fakes import FakeBackend
from tests.rpc import SIZE, keypoints, rpc_error
from tests.servers import serve_app

BODY = {"keypoints": walk(5), "format": "coco", "image_size": [1920, 1080]}
MESSAGE = "the model answered values that are not finite for track '0'"


class NaNBackend(FakeBackend):
    """Answers NaN in one joint of every frame, as a model exported in a precision that overflows would."""

    async def infer(self, batch: Array, *, first: int = 0, headers: Mapping[str, str] | None = None) -> Array:
        out = await super().infer(batch, first=first, headers=headers)
        out[:, :, 3, 1] = np.nan
        return out


async def errors(client: httpx.AsyncClient, protocol: str) -> float:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(f'motionlift_requests_total{{outcome="backend_error",protocol="{protocol}"}} '):
            return float(line.split()[-1])
    return 0.0


async def test_a_non_finite_answer_is_an_error_with_the_request_id_never_a_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lifter = Lifter(NaNBackend(), Settings())
    async with AsyncExitStack() as stack:
        url, app = stack.enter_context(serve_app(Settings(), lifter))
        stack.enter_context(caplog.at_level(logging.ERROR))
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=url))
        r = await client.post("/lift", json=BODY, headers={"x-request-id": "nan-rest"})
        assert r.status_code == 500
        assert r.json() == {"error": {"code": "backend_error", "message": MESSAGE, "request_id": "nan-rest"}}

        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.state.grpc.port}") as channel:
            stub = lift_pb2_grpc.LifterStub(channel)  # type: ignore[no-untyped-call]  # generated
            request = pb.LiftRequest(
                tracks=[pb.Track(keypoints=keypoints(walk(5)))], format=pb.FORMAT_COCO, image_size=SIZE
            )
            error = await rpc_error(stub.Lift(request, metadata=(("x-request-id", "nan-grpc"),)))
        assert (error.code(), error.details()) == (grpc.StatusCode.INTERNAL, f"{MESSAGE} (request nan-grpc)")
        assert (await errors(client, "rest"), await errors(client, "grpc")) == (1.0, 1.0)
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("nan-rest" in m and MESSAGE in m for m in logged), logged
    assert any("nan-grpc" in m and MESSAGE in m for m in logged), logged
