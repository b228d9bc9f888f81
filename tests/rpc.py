"""gRPC test helpers: arrays to and from the messages, failed calls and their metadata."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest

from service.api.pb.motionlift.v1 import lift_pb2 as pb

SIZE = pb.ImageSize(width=1920, height=1080)


def keypoints(frames: Any) -> Any:
    array = np.asarray(frames, np.float32)
    return pb.Keypoints(frames=array.shape[0], joints=array.shape[1], channels=array.shape[2], values=array.ravel())


def joints(message: Any) -> npt.NDArray[np.float32]:
    return np.asarray(message.values, np.float32).reshape(message.frames, message.joints, 3)


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def trailing(error: grpc.aio.AioRpcError) -> dict[str, str]:
    return {k: v for k, v in error.trailing_metadata() or ()}
