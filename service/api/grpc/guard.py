"""The gRPC edge's key check for the methods the servicer does not check itself (server reflection): without a
valid key in the ``authorization`` metadata a call ends UNAUTHENTICATED before its handler runs. Health checking
stays open, as REST's probes do; ``motionlift.v1.Lifter``'s methods check the key in the servicer, which needs
the caller for quotas (``service.core.access``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import grpc

from service.core.access import Access
from service.errors import LiftError, Unauthenticated

OPEN_PREFIXES: Final = ("/grpc.health.v1.Health/", "/motionlift.v1.Lifter/")


class KeyGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc's aio types are partial
    """Ends calls without a valid key UNAUTHENTICATED (see the module); ``count`` records each refusal."""

    def __init__(self, access: Access, count: Callable[[LiftError], object]) -> None:
        self._access = access
        self._count = count

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        given = next((str(v) for k, v in details.invocation_metadata or () if k == "authorization"), None)
        try:
            self._access.authenticate(given)
        except Unauthenticated as exc:
            self._count(exc)
            return _refusing(handler, exc)
        return handler


def _refusing(handler: Any, error: LiftError) -> Any:
    """A handler of ``handler``'s kind that ends the call with ``error``'s status, reading nothing."""

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode[error.grpc_code], error.message, (("motionlift-code", error.code),))

    async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode[error.grpc_code], error.message, (("motionlift-code", error.code),))
        yield  # an async generator, as streaming handlers are

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(bool(handler.request_streaming), bool(handler.response_streaming))]
    behaviour = streaming if handler.response_streaming else unary
    return make(
        behaviour, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )
