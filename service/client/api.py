"""``MotionLiftClient`` (sync) and ``AsyncMotionLiftClient`` (asyncio): lift over REST or gRPC, stream over gRPC.

Both take exactly one of ``url`` (REST, ``http://host:port``) or ``grpc`` (``host:port``); ``lift`` means the
same over both and answers the same float32 arrays. Every error is the service's
typed error (``service.errors``: ``InvalidInput`` with its ``field``, ``Overloaded`` with ``retry_after_s``,
``Unavailable``, ``DeadlineExceeded``, ...), whichever transport carried it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import replace
from types import TracebackType
from typing import Any

from service.client import wire
from service.client.security import PLAIN, Security
from service.client.streams import AsyncFrameStream, FrameStream
from service.client.transports import (
    AsyncGrpcTransport,
    AsyncRestTransport,
    GrpcTransport,
    RestTransport,
    metadata,
)
from service.client.types import LiftAnswer, lift_call
from service.core.options import LiftOptions
from service.core.stream_options import StreamOptions

DEFAULT_TIMEOUT_S = 60.0


def _security(url: str | None, grpc: str | None, tls: Security, api_key: str | None) -> Security:
    """Both clients' constructor checks: exactly one target; the key given, else ``$MOTIONLIFT_API_KEY``."""
    if (url is None) == (grpc is None):
        raise ValueError("give exactly one of url (REST, http://host:port) or grpc (host:port)")
    return replace(tls, api_key=api_key).with_env() if api_key else tls.with_env()


class MotionLiftClient:
    """A blocking client. ``timeout_s`` bounds each call (the gRPC deadline; the REST read timeout). ``api_key``
    (default ``$MOTIONLIFT_API_KEY``) and ``tls`` (a ``Security``: CA, client certificate) as
    ``service.client.security`` says; REST uses TLS for ``https://`` URLs.

    ``lift(keypoints=...)`` lifts one sequence ``[T, J, C]``; ``lift(tracks=...)`` several
    (``{id: [T, J, C]}`` or a list). Options mean what ``POST /lift``'s fields mean (README, "Input").
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        grpc: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        api_key: str | None = None,
        tls: Security = PLAIN,
    ):
        self.security = _security(url, grpc, tls, api_key)
        self._grpc = None if grpc is None else GrpcTransport(grpc, timeout_s=timeout_s, security=self.security)
        self._transport = self._grpc or RestTransport(str(url), timeout_s=timeout_s, security=self.security)
        self.timeout_s = timeout_s

    def lift(
        self,
        keypoints: Any = None,
        *,
        tracks: Mapping[str, Any] | Sequence[Any] | None = None,
        timeout_s: float | None = None,
        request_id: str | None = None,
        **options: Any,
    ) -> LiftAnswer:
        """Lift to 3D. ``options`` are ``LiftOptions``' fields, by name: ``format`` (required), ``image_size``,
        ``normalization``, ``flip``, ``rootrel``, ``pixels``, ``overlap``. Raises ``InvalidInput`` (a wrong option
        name or type, found here; a wrong value, found by the service) or the service's other errors."""
        call = lift_call(keypoints, tracks, options=LiftOptions.from_mapping(options))
        return self._transport.lift(call, timeout_s=timeout_s, request_id=request_id)

    def stream(
        self,
        frames: Iterable[Any],
        *,
        timeout_s: float | None = None,
        request_id: str | None = None,
        **config: Any,
    ) -> FrameStream:
        """Stream ``frames`` (each ``{track_id: [J, C]}`` or one pose ``[J, C]``) on ``LiftStream``; iterate the
        result for answers. ``config``: ``StreamOptions``' fields by name (``format``, ``image_size``, ``mode``,
        ``lookahead``, ``window``, ``hop``, ``flip``, ``rootrel``, ``pixels``, ``normalization``,
        ``track_expiry_s``, ``policy``, ``smoothing`` and its parameters; README, "gRPC"). A stream has no
        deadline unless ``timeout_s`` is given (a live stream lasts as long as its video). gRPC only (``ValueError``
        otherwise).

        Unless ``policy`` is given, frames in a sized collection (a list, a tuple, an array: all there at once,
        not paced by a camera) stream with policy ``all``, so every frame is answered and sending waits for the
        service; any other iterable (a generator, a camera) with ``latest``, where a frame that comes while an
        older one waits replaces it and the skip is counted. ``started.policy`` says which is in effect."""
        if self._grpc is None:
            raise ValueError("streaming needs gRPC: MotionLiftClient(grpc='host:port')")
        if config.get("policy") is None:
            config["policy"] = "all" if isinstance(frames, Sized) else "latest"
        request = wire.stream_config(StreamOptions.from_mapping(config))
        return FrameStream(
            self._grpc.stub, request, frames, timeout_s=timeout_s, metadata=metadata(request_id, self.security)
        )

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> MotionLiftClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class AsyncMotionLiftClient:
    """The asyncio client: the same ``lift`` as ``MotionLiftClient``, awaited; ``stream()`` returns an
    ``AsyncFrameStream`` to use as ``async with client.stream(...) as s``. Create it inside the event loop
    that uses it (grpc.aio channels belong to one loop)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        grpc: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        api_key: str | None = None,
        tls: Security = PLAIN,
    ):
        self.security = _security(url, grpc, tls, api_key)
        self._grpc = None if grpc is None else AsyncGrpcTransport(grpc, timeout_s=timeout_s, security=self.security)
        self._transport = self._grpc or AsyncRestTransport(str(url), timeout_s=timeout_s, security=self.security)
        self.timeout_s = timeout_s

    async def lift(
        self,
        keypoints: Any = None,
        *,
        tracks: Mapping[str, Any] | Sequence[Any] | None = None,
        timeout_s: float | None = None,
        request_id: str | None = None,
        **options: Any,
    ) -> LiftAnswer:
        """As ``MotionLiftClient.lift``."""
        call = lift_call(keypoints, tracks, options=LiftOptions.from_mapping(options))
        return await self._transport.lift(call, timeout_s=timeout_s, request_id=request_id)

    def stream(
        self, *, timeout_s: float | None = None, request_id: str | None = None, **config: Any
    ) -> AsyncFrameStream:
        """A ``LiftStream`` call, opened by ``async with``; ``config`` and ``timeout_s`` as
        ``MotionLiftClient.stream``."""
        if self._grpc is None:
            raise ValueError("streaming needs gRPC: AsyncMotionLiftClient(grpc='host:port')")
        request = wire.stream_config(StreamOptions.from_mapping(config))
        return AsyncFrameStream(
            self._grpc.stub, request, timeout_s=timeout_s, metadata=metadata(request_id, self.security)
        )

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncMotionLiftClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
