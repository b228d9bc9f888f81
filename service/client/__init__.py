"""Python client of MotionLift: ``MotionLiftClient`` (sync) and ``AsyncMotionLiftClient`` (asyncio), over REST
or gRPC, with the service's typed errors (``service.errors``). See ``service.client.api``.

Installed alone (``pip install 'motionlift[client]'``) it needs numpy, httpx, grpcio and protobuf: it imports
the contract it shares with the service (``service.errors``, ``service.core.options`` / ``arrays`` / ``results``
/ ``frames``, the generated ``service.api.pb``), never the server (no torch, FastAPI or pydantic).
"""

from service.client.api import AsyncMotionLiftClient, MotionLiftClient
from service.client.security import Security
from service.client.streams import AsyncFrameStream, FrameStream
from service.client.types import FrameResult, LiftAnswer, StreamStarted, Timing, TrackResult
from service.core.frames import FrameLatency
from service.core.options import LiftOptions
from service.core.stream_options import StreamOptions

__all__ = [
    "AsyncFrameStream",
    "AsyncMotionLiftClient",
    "FrameLatency",
    "FrameResult",
    "FrameStream",
    "LiftAnswer",
    "LiftOptions",
    "MotionLiftClient",
    "Security",
    "StreamOptions",
    "StreamStarted",
    "Timing",
    "TrackResult",
]
