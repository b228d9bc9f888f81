"""Python client of MotionLift: ``MotionLiftClient`` (sync) and ``AsyncMotionLiftClient`` (asyncio), over REST
or gRPC, with the service's typed errors (``service.errors``). See ``service.client.api``."""

from service.client.api import AsyncMotionLiftClient, MotionLiftClient
from service.client.streams import AsyncFrameStream, FrameStream
from service.client.types import (
    FrameResult,
    LiftAnswer,
    ServerLatency,
    StreamLatency,
    StreamStarted,
    TrackResult,
)

__all__ = [
    "AsyncFrameStream",
    "AsyncMotionLiftClient",
    "FrameResult",
    "FrameStream",
    "LiftAnswer",
    "MotionLiftClient",
    "ServerLatency",
    "StreamLatency",
    "StreamStarted",
    "TrackResult",
]
