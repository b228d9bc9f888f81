"""The gRPC servicer of ``motionlift.v1.Lifter`` (unary ``Lift``, bidirectional ``LiftStream``): it only
translates messages (``wire``) and calls the core (``Lifter.lift``, ``Lifter.open_stream``). The server around
it (health, reflection, lifecycle) is ``service.api.grpc.server``; ``handlers`` are its method handlers.

Admission before work: a ``Lift`` call is admitted (key, then ``Lifter.admit``) before its message is read, as a
REST request is before its body; a refused call's message is never received or decoded.

Errors: a ``LiftError`` from the core ends the call with ``grpc.StatusCode[error.grpc_code]`` (the one
error table, ``service.errors``) and the details ``"<field>: <message>"``; trailing metadata carries
``motionlift-field``, ``x-request-id`` and, when retrying later may help, ``retry-after-s``. Anything else
is logged with the request id and answered INTERNAL naming that id. Deadlines: the time a call has left is
passed to the core as ``timeout_s``, which drops the call's queued windows when it runs out; a call whose deadline
has passed, or whose send the core refused (it ended), is left to the core to end, without a status of ours.
Tracing: each call is a server span (``Lift``, ``LiftStream``: one span for the whole stream) continuing the
caller's W3C ``traceparent`` metadata, with its gRPC status code; its request id is ``REQUEST_ID`` for its log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import AbstractContextManager
from types import MappingProxyType
from typing import Final, TypeAlias

import grpc

from service.api.grpc import wire
from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.core.access import ANONYMOUS, Caller
from service.core.lifter import Lifter
from service.core.results import coordinates
from service.core.streams import StreamSession
from service.core.trace import Span
from service.errors import DeadlineExceeded, InvalidInput, LiftError
from service.telemetry import logs

log = logging.getLogger(__name__)

Context: TypeAlias = grpc.aio.ServicerContext


OFFLOAD_VALUES = 100_000  # requests with more keypoint values (~2,000 frames) are decoded in a worker thread
MAX_REQUEST_ID = 128  # as REST's (service.api.rest.middleware): a client's id is echoed and logged
SERVICE: Final = "motionlift.v1.Lifter"
TRACE_KEYS: Final = ("traceparent", "tracestate")
NO_CONTEXT: Final[Mapping[str, str]] = MappingProxyType({})


def _request_id(context: Context) -> str:
    """The caller's ``x-request-id`` metadata (its first ``MAX_REQUEST_ID`` characters), or a new id."""
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and value:
            return str(value)[:MAX_REQUEST_ID]
    return uuid.uuid4().hex


def _started(span: Span, method: str) -> None:
    span.set("rpc.system", "grpc")
    span.set("rpc.service", SERVICE)
    span.set("rpc.method", method)


def _ended(span: Span, code: grpc.StatusCode) -> None:
    """The call's status on its span; the codes of a fault (not of a caller's mistake) mark it an error."""
    span.set("rpc.grpc.status_code", code.value[0])
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN):
        span.fail(f"gRPC {code.name}")


async def _message(requests: AsyncIterator[pb.LiftRequest], context: Context) -> pb.LiftRequest:
    """The unary call's one message. Raises ``InvalidInput`` when the client half-closed without sending one, and
    ``asyncio.CancelledError`` when it left instead. A second message, which no gRPC client sends on a unary
    method, is never read."""
    message = await anext(aiter(requests), None)
    if message is None:
        # A cancelled call's messages end as a half-closed one's do. Sending the headers tells them apart: that
        # fails only when the call is gone (grpcio cancels this task for it, or the send raises).
        try:
            await context.send_initial_metadata(())
        except Exception:
            raise asyncio.CancelledError("the client cancelled the call before sending its message") from None
        raise InvalidInput("the call ended without a LiftRequest message", field="request")
    return message


def _fail(context: Context, exc: BaseException, request_id: str, method: str, span: Span) -> None:
    """Set the call's status for ``exc`` (code, details, trailing metadata); the handler then returns, and grpcio
    ends the call with it. An error of grpc's own (the call already aborted or ended) is raised again as it is: the
    call has its status. Not ``context.abort``: grpcio keeps the ``AbortError`` it raises in the call's state,
    whose frames hold that state, a reference cycle of about 40 objects per call; at 10x overload the garbage
    collector's share of the gateway was 6%, in pauses up to 20 ms."""
    if isinstance(exc, grpc.aio.BaseError):
        raise exc
    metadata: list[tuple[str, str]] = [("x-request-id", request_id)]
    if isinstance(exc, LiftError):
        code = grpc.StatusCode[exc.grpc_code]
        details = f"{exc.field}: {exc.message}" if exc.field else exc.message
        metadata.append(("motionlift-code", exc.code))  # the error class, where one status covers several
        if exc.field:
            metadata.append(("motionlift-field", exc.field))
        if exc.retry_after_s is not None:
            metadata.append(("retry-after-s", f"{exc.retry_after_s:g}"))
        if code == grpc.StatusCode.INTERNAL:
            log.error("%s failed (request %s): %s", method, request_id, exc.message)
            details = f"{details} (request {request_id})"
    else:  # never a traceback to the client: the request id finds the log line
        log.error("unhandled error in %s (request %s)", method, request_id, exc_info=exc)
        code, details = grpc.StatusCode.INTERNAL, f"internal error (request {request_id})"
    _ended(span, code)
    context.set_code(code)
    context.set_details(details)
    context.set_trailing_metadata(tuple(metadata))


def _past_deadline(context: Context) -> bool:
    remaining = context.time_remaining()  # None without a deadline
    return remaining is not None and remaining <= 0


def _ended_by_core(context: Context, exc: Exception) -> bool:
    """Whether ``exc`` says the call is over in grpc's core, which sends (or sent) its status: a send it refused
    (``grpc.aio.InternalError``), or the service's own deadline error once the deadline has passed, when the status
    the handler would send races the core's. Either way the client learns the end from its side of the call."""
    if isinstance(exc, grpc.aio.InternalError):
        return True
    return isinstance(exc, LiftError) and exc.grpc_code == "DEADLINE_EXCEEDED" and _past_deadline(context)


class LifterServicer:
    """``motionlift.v1.Lifter`` over a started ``Lifter``."""

    def __init__(self, lifter: Lifter) -> None:
        self._lifter = lifter
        # A refusal waits before it is sent, so clients that retry at once do not make a storm of them
        # (service/api/rest/protocol.py measures why); the wait is a timer, not work.
        self._refusal_delay_s = lifter.settings.refusal_delay_ms / 1000

    def _span(self, method: str, context: Context, request_id: str) -> AbstractContextManager[Span]:
        """The call's server span, continuing the trace in its ``traceparent`` metadata."""
        tracer = self._lifter.tracer
        given = NO_CONTEXT
        if tracer.on:
            given = {k: str(v) for k, v in context.invocation_metadata() or () if k in TRACE_KEYS}
        return tracer.request(f"{SERVICE}/{method}", given, request_id)

    def _caller(self, context: Context) -> Caller:
        """The call's caller from its ``authorization`` metadata; ``Unauthenticated`` without a valid key."""
        if not self._lifter.access.enabled:
            return ANONYMOUS
        given = next((str(v) for k, v in context.invocation_metadata() or () if k == "authorization"), None)
        return self._lifter.access.authenticate(given)

    async def Lift(self, requests: AsyncIterator[pb.LiftRequest], context: Context) -> pb.LiftResponse | None:
        """Admission, then the one message: decoded, ``Lifter.lift`` with the call's remaining time, encoded;
        errors as the module says. Served as a stream-unary handler (``handlers``), so that admission comes before
        the message is read."""
        request_id = _request_id(context)
        with logs.request(request_id), self._span("Lift", context, request_id) as span:
            _started(span, "Lift")
            try:
                response = await self._lift(requests, context, request_id)
                if _past_deadline(context):  # nobody waits for it: the core ends the call DEADLINE_EXCEEDED
                    raise DeadlineExceeded("the call's deadline passed as its answer was made")
            except Exception as exc:
                if _ended_by_core(context, exc):
                    _ended(span, grpc.StatusCode.DEADLINE_EXCEEDED)
                    raise asyncio.CancelledError(f"Lift {request_id} ended by the core") from None
                _fail(context, exc, request_id, "Lift", span)
                return None  # the status set by _fail ends the call
            _ended(span, grpc.StatusCode.OK)
            return response

    async def _lift(
        self, requests: AsyncIterator[pb.LiftRequest], context: Context, request_id: str
    ) -> pb.LiftResponse:
        caller = ANONYMOUS
        try:
            caller = self._caller(context)
            # Before the message is read: a refused call's message is never received or decoded. At 10x overload
            # that is most calls, and grpcio's reading and decoding of each was CPU the gateway did not have.
            self._lifter.admit()
        except LiftError as exc:  # refused at the door: no reservation to settle
            await asyncio.sleep(self._refusal_delay_s)
            # Raised as made, never kept in a local: a frame of the traceback holding its own exception would be a
            # reference cycle per refusal for the garbage collector.
            raise self._lifter.refused(
                exc, protocol="grpc", admitted=False, caller=caller, request_id=request_id
            ) from None
        try:
            request = await _message(requests, context)
            if sum(len(t.keypoints.values) for t in request.tracks) > OFFLOAD_VALUES:
                tracks, options = await asyncio.to_thread(wire.lift_input, request)
            else:
                tracks, options = wire.lift_input(request)
        except LiftError as exc:
            raise self._lifter.refused(exc, protocol="grpc", caller=caller, request_id=request_id) from None
        except asyncio.CancelledError:  # the client left before its request reached the queue
            self._lifter.abandoned("grpc")
            raise
        result = await self._lifter.lift(
            tracks, options, timeout_s=context.time_remaining(), protocol="grpc", caller=caller, request_id=request_id
        )
        return wire.lift_response(result, request_id, self._lifter.info)

    async def LiftStream(self, requests: AsyncIterator[pb.StreamRequest], context: Context) -> None:
        """Config first, then frames; answers as ``service.core.streams`` describes. The client's half-close
        flushes the remaining frames and ends the call with OK; a bad frame ends it INVALID_ARGUMENT.

        Written with grpcio's reader-writer API (``context.write``), not as an async generator, so a send the
        core refuses is seen here: it means the call already ended (its deadline passed, the client cancelled,
        the connection dropped) and the core has its status. The handler then ends without sending one; as a
        generator, grpcio logged such a refusal at ERROR whenever it came before the core's notice of the end."""
        request_id = _request_id(context)
        with logs.request(request_id), self._span("LiftStream", context, request_id) as span:
            _started(span, "LiftStream")
            async with contextlib.aclosing(self._stream(requests, context, request_id)) as responses:
                try:
                    async for response in responses:
                        await context.write(response)
                except Exception as exc:
                    if _ended_by_core(context, exc):
                        late = _past_deadline(context)
                        _ended(span, grpc.StatusCode.DEADLINE_EXCEEDED if late else grpc.StatusCode.CANCELLED)
                        raise asyncio.CancelledError(f"LiftStream {request_id} ended by the core") from None
                    _fail(context, exc, request_id, "LiftStream", span)
                    return  # the status set by _fail ends the call
            _ended(span, grpc.StatusCode.OK)

    async def _stream(
        self, requests: AsyncIterator[pb.StreamRequest], context: Context, request_id: str
    ) -> AsyncGenerator[pb.StreamResponse, None]:
        session: StreamSession | None = None
        reader: asyncio.Task[None] | None = None
        try:
            first = await anext(aiter(requests), None)
            if first is None:
                return
            try:
                caller = self._caller(context)
            except LiftError as exc:  # counted, as every refused call is
                raise self._lifter.refused(exc, protocol="grpc", admitted=False, request_id=request_id) from None
            session = self._lifter.open_stream(
                wire.stream_options(first), timeout_s=context.time_remaining, caller=caller, request_id=request_id
            )
            plan = session.plan
            yield wire.stream_started(plan, coordinates(plan.options), self._lifter.info)
            reader = asyncio.create_task(self._read(requests, session, request_id), name="stream reader")
            async for answer in session.answers():
                yield wire.frame_answer(answer)
        finally:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            if session is not None:
                await session.close()

    @staticmethod
    async def _read(requests: AsyncIterator[pb.StreamRequest], session: StreamSession, request_id: str) -> None:
        # Reads as fast as frames come, so they wait in the session's bounded state, not in gRPC's buffers.
        try:
            async for request in requests:
                session.push(wire.stream_frames(request))
                await session.room()  # policy all: not reading on slows the sender (HTTP/2 flow control)
            await session.finish()
        except LiftError as exc:
            await session.fail(exc)
        except grpc.aio.BaseError:
            # The call already ended (its deadline passed, it was aborted or cancelled): nothing more to read, and
            # its status is set by whatever ended it, not by this reader.
            return
        except Exception:
            log.exception("unhandled error reading LiftStream (request %s)", request_id)
            await session.fail(LiftError("internal error"))  # INTERNAL; _fail adds the request id


def handlers(servicer: LifterServicer) -> dict[str, grpc.RpcMethodHandler]:
    """``motionlift.v1.Lifter``'s method handlers over ``servicer``, by method name. ``Lift`` is unary in the proto
    and on the wire (one message each way) but served as stream-unary: a unary handler gets its message only after
    grpcio has received and decoded it, so admission could not come first."""
    return {
        "Lift": grpc.stream_unary_rpc_method_handler(
            servicer.Lift,
            request_deserializer=pb.LiftRequest.FromString,
            response_serializer=pb.LiftResponse.SerializeToString,
        ),
        "LiftStream": grpc.stream_stream_rpc_method_handler(
            servicer.LiftStream,
            request_deserializer=pb.StreamRequest.FromString,
            response_serializer=pb.StreamResponse.SerializeToString,
        ),
    }
