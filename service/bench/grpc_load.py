"""The gRPC side of the load benchmark: the same requests as ``load.drive`` sent as unary ``Lift`` calls."""

from __future__ import annotations

import asyncio
import json
import time

import grpc

from service.api.pb.motionlift.v1 import lift_pb2, lift_pb2_grpc
from service.bench.load import LoadRow, ping_health


def lift_request(body: bytes) -> lift_pb2.LiftRequest:
    """The ``LiftRequest`` equal to a REST body made by ``load.request_body`` (COCO, pixels, one track)."""
    data = json.loads(body)
    frames = data["keypoints"]
    values = [v for frame in frames for joint in frame for v in joint]
    keypoints = lift_pb2.Keypoints(frames=len(frames), joints=len(frames[0]), channels=len(frames[0][0]), values=values)
    width, height = data["image_size"]
    return lift_pb2.LiftRequest(
        tracks=[lift_pb2.Track(id="0", keypoints=keypoints)],
        format=lift_pb2.FORMAT_COCO,
        image_size=lift_pb2.ImageSize(width=width, height=height),
        flip=bool(data["flip"]),
    )


async def drive_grpc(
    target: str, url: str, body: bytes, frames: int, concurrency: int, seconds: float, setup: str, window: int
) -> LoadRow:
    """``concurrency`` gRPC clients call ``Lift`` back to back for ``seconds`` on one channel (HTTP/2
    multiplexes them); REST ``/healthz`` is pinged meanwhile."""
    row = LoadRow(setup, concurrency)
    request = lift_request(body)
    stop = time.perf_counter() + seconds
    async with grpc.aio.insecure_channel(target) as channel:
        lift = lift_pb2_grpc.LifterStub(channel).Lift  # type: ignore[no-untyped-call]  # generated

        async def client_loop() -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    answer = await lift(request, timeout=120)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        row.rejected += 1
                        await asyncio.sleep(0.1)
                    else:
                        row.errors += 1
                    continue
                row.requests += 1
                row.frames += frames
                row.latencies_ms.append(1000 * (time.perf_counter() - t0))
                row.batch_sizes.append(int(answer.latency.batch_size))
                row.model_frames += window * int(answer.latency.windows)

        start = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(concurrency)), ping_health(url, stop, row))
        row.seconds = time.perf_counter() - start
    return row
