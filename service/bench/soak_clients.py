"""The soak benchmark's load (``service/bench/soak.py``): one child process per kind of call, each an asyncio
client of ``service.client`` that sends on a seeded random (Poisson) schedule, never waiting for answers before
the next call (open loop, so a server that stops answering shows up as unanswered calls, not as a slower client).

Kinds: ``rest`` (``POST /lift``) and ``grpc`` (unary ``Lift``) of 1-3 windows, one track (a quarter of them two),
flip or not; ``stream`` (a ``LiftStream`` paced at 30 fps for 1-6 s: causal with one track, or look-ahead with 1-3
tracks). Each call is, at random: normal; **cancelled** midway (the call's task
is cancelled: httpx closes its connection, grpc.aio sends RST_STREAM); or **disconnected** (REST: a raw socket that
sends the request, or half its body, and closes before the answer; gRPC: the call's own channel is closed under
it). Some lifts are invalid on purpose (a negative score): their expected answer is ``InvalidInput``. The calls
themselves are ``service/bench/soak_calls.py``'s.

Accounting, per interval of sending: a call is *answered* when the client got the service's answer (OK, or a
typed ``LiftError``), *cancelled* / *disconnected* when the client aborted it before the answer, and unanswered
otherwise (an untyped failure, a connection closed without an answer, or still pending after ``DRAIN_S``).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.bench.soak_calls import CLIENT_TIMEOUT_S, Action, Call, Frames, one_stream, rest_disconnect, tracks_of
from service.bench.stream import IMAGE_SIZE, poses

KINDS = ("rest", "grpc", "stream")
CANCEL_P, DISCONNECT_P, INVALID_P = 0.1, 0.1, 0.05
DRAIN_S = 90.0  # after the load, how long calls in flight may still take
EXPECTED = ("ok", "cancelled", "disconnected", "InvalidInput (sent invalid on purpose)")


@dataclass(frozen=True)
class Plan:
    """What every load process needs: where the service is, the schedule, and the model's stream window."""

    url: str
    grpc_target: str
    seconds: float
    every: float
    seed: int
    window: int  # stream windows, and lifts of up to 3 windows


@dataclass
class Tally:
    """Calls sent in one interval and how they ended; ``unanswered`` is what is left."""

    sent: int = 0
    answered: int = 0
    errors: int = 0  # answered with a typed error (included in ``answered``)
    cancelled: int = 0
    disconnected: int = 0

    @property
    def unanswered(self) -> int:
        return self.sent - self.answered - self.cancelled - self.disconnected

    def add(self, other: Tally) -> None:
        for name in ("sent", "answered", "errors", "cancelled", "disconnected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class WorkerReport:
    """One process's counts: per interval, outcomes by name, and the frames of streams that ended normally
    (each must be answered or reported skipped)."""

    kind: str
    intervals: dict[int, Tally] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    frames: Frames = field(default_factory=Frames)


def work(kind: str, plan: Plan, rate: float, queue: Any, go: Any, start: Any) -> None:
    """The child process: say ready, wait for ``go``, load from ``start.value`` (``time.monotonic()``), then
    put ``("final", kind, WorkerReport)`` (and ``("progress", ...)`` every interval meanwhile)."""
    queue.put(("ready", kind, None))
    go.wait()
    asyncio.run(Worker(kind, plan, rate, queue, start.value).run())


def draw(kind: str, rng: np.random.Generator, window: int) -> Call:
    """The next call of ``kind`` (always the same number of draws, so a seed gives one sequence of calls)."""
    u = rng.random(9)
    action: Action = "cancel" if u[0] < CANCEL_P else "disconnect" if u[0] < CANCEL_P + DISCONNECT_P else "normal"
    seconds = 1 + 5 * float(u[1])
    causal = kind == "stream" and u[2] < 0.25  # one window per frame: the costliest, so one track, no flip
    return Call(
        action=action,
        at=(0.2 + float(u[3]) * (seconds - 0.2)) if kind == "stream" else 0.05 * float(u[3]),
        frames=1 + int(u[4] * 3 * window),
        tracks=1 if causal else 1 + int(u[5] * 3) if kind == "stream" else 1 + int(u[5] < 0.25),
        flip=not causal and bool(u[6] < 0.5),
        invalid=kind != "stream" and bool(u[7] < INVALID_P),
        half_body=bool(u[8] < 0.5),
        seconds=seconds,
        lookahead=0 if causal else max(1, min(8, window // 3)),
    )


class Worker:
    """The asyncio load of one kind: Poisson arrivals at ``rate`` per second for ``plan.seconds``."""

    def __init__(self, kind: str, plan: Plan, rate: float, queue: Any, start: float) -> None:
        self.kind, self.plan, self.rate, self.queue, self.start = kind, plan, rate, queue, start
        self.report = WorkerReport(kind)
        self.motion = poses()
        self.pending: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        from service.client import AsyncMotionLiftClient

        # Created inside the loop (grpc.aio channels belong to one); streams open a channel each instead.
        rest = self.kind == "rest"
        self.shared = AsyncMotionLiftClient(
            self.plan.url if rest else None, grpc=None if rest else self.plan.grpc_target, timeout_s=CLIENT_TIMEOUT_S
        )
        progress = asyncio.create_task(self._progress())
        rng = np.random.default_rng([self.plan.seed, KINDS.index(self.kind)])
        due, end = self.start, self.start + self.plan.seconds
        while (due := due + float(rng.exponential(1 / self.rate))) < end:
            call = draw(self.kind, rng, self.plan.window)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            self._launch(call)
        if self.pending:  # bounded: what is still pending afterwards stays unanswered
            await asyncio.wait(self.pending, timeout=DRAIN_S)
        progress.cancel()
        self.queue.put(("final", self.kind, copy.deepcopy(self.report)))  # pickled later, by the queue's thread
        await self.shared.close()

    async def _progress(self) -> None:
        """A copy of the counts at each interval's end, for the parent's progress lines."""
        tick = self.start
        while True:
            tick += self.plan.every
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            self.queue.put(("progress", self.kind, copy.deepcopy(self.report)))

    def _launch(self, call: Call) -> None:
        interval = int((time.monotonic() - self.start) // self.plan.every)
        self.report.intervals.setdefault(interval, Tally()).sent += 1
        task = asyncio.create_task(self._one(call, interval))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _one(self, call: Call, interval: int) -> None:
        outcome = await self._settle(call)
        tally = self.report.intervals[interval]
        if outcome in ("cancelled", "disconnected"):
            setattr(tally, outcome, getattr(tally, outcome) + 1)
        elif not outcome.startswith("failed"):
            tally.answered += 1
            tally.errors += outcome != "ok"
        if call.invalid and outcome in ("ok", "InvalidInput"):
            outcome += " (sent invalid on purpose)"
        self.report.outcomes[outcome] += 1

    async def _settle(self, call: Call) -> str:
        """Run the call, abort it at ``call.at`` if its action says so and it is still running; its outcome."""
        from service.client import AsyncMotionLiftClient

        own = self.kind == "stream" or (self.kind == "grpc" and call.action == "disconnect")
        client = AsyncMotionLiftClient(grpc=self.plan.grpc_target, timeout_s=CLIENT_TIMEOUT_S) if own else self.shared
        try:
            task = asyncio.create_task(self._body(client, call))
            aborted = False
            if call.action == "cancel" or (call.action == "disconnect" and own):
                await asyncio.wait({task}, timeout=call.at)
                aborted = not task.done()
                if aborted and call.action == "cancel":
                    task.cancel()
                elif aborted:  # the call's own channel goes away under it
                    await client.close()
            await asyncio.wait({task})
            return outcome(task, call.action if aborted else None)
        finally:
            if own:
                await client.close()

    def _body(self, client: Any, call: Call) -> Any:
        if self.kind == "stream":
            return one_stream(client, call, self.motion, self.plan.window, self.report.frames)
        if self.kind == "rest" and call.action == "disconnect":
            return rest_disconnect(self.plan.url, call, self._keypoints(call))
        return self._lift(client, call)

    def _keypoints(self, call: Call) -> dict[str, Any]:
        keypoints = self.motion[: call.frames].copy()
        if call.invalid:
            keypoints[-1, 0, 2] = -1.0  # a negative score: the service must refuse it, naming the place
        return tracks_of(keypoints, call.tracks)

    async def _lift(self, client: Any, call: Call) -> str:
        await client.lift(tracks=self._keypoints(call), format="coco", image_size=IMAGE_SIZE, flip=call.flip)
        return "ok"


def outcome(task: asyncio.Task[str], aborted: Action | None) -> str:
    """A finished call's outcome: its result; ``cancelled`` / ``disconnected`` when it was aborted before it
    ended; a typed error's class name (answered); ``failed: ...`` for anything else (unanswered)."""
    from service.errors import LiftError

    # A closed grpc.aio channel cancels the task awaiting its call, rather than raising an error in it.
    if aborted and (task.cancelled() or task.exception() is not None):
        return "disconnected" if aborted == "disconnect" else "cancelled"
    if task.cancelled():
        return "failed: cancelled by nobody"
    exc = task.exception()
    if exc is None:
        return task.result()
    if isinstance(exc, LiftError):
        return type(exc).__name__
    return f"failed: {type(exc).__name__}: {exc}"[:160]
