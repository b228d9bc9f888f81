"""The micro-batcher against a fake run function; batches are held open with events, never sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from service.core.batcher import Batcher
from service.errors import BackendError, DeadlineExceeded, Overloaded, Unavailable

F32 = npt.NDArray[np.float32]


class Runner:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []  # lengths of the items of each batch
        self.gate = asyncio.Event()
        self.gate.set()
        self.running = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self, items: list[F32]) -> Sequence[F32]:
        self.batches.append([len(i) for i in items])
        self.running.set()
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [i * 2 for i in items]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def runner() -> Runner:
    return Runner()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def make(runner: Runner, clock: Clock | None = None, **knobs: float) -> Batcher[F32, F32]:
    """A started batcher over windows keyed and costed by their length."""
    settings = {
        "max_batch_size": 4,
        "max_batch_cost": 100,
        "max_delay_s": 0.0,
        "max_queued": 10,
        "max_running": 1,
        **knobs,
    }
    b: Batcher[F32, F32] = Batcher(
        runner,
        key=len,
        cost=len,
        max_batch_size=int(settings["max_batch_size"]),
        max_batch_cost=int(settings["max_batch_cost"]),
        max_delay_s=settings["max_delay_s"],
        max_queued=int(settings["max_queued"]),
        max_running=int(settings["max_running"]),
        clock=clock or Clock(),
    )
    await b.start()
    return b


@pytest.fixture
async def batcher(runner: Runner, clock: Clock) -> AsyncIterator[Batcher[F32, F32]]:
    b = await make(runner, clock)
    yield b
    runner.gate.set()
    await b.close()


def items(*lengths: int) -> list[F32]:
    return [np.full((n, 2), float(i), np.float32) for i, n in enumerate(lengths)]


async def test_results_come_back_in_order_with_stamps(batcher: Batcher[F32, F32]) -> None:
    futures = batcher.submit(items(5, 5, 5))
    done = await asyncio.gather(*futures)
    assert [float(d.value[0, 0]) for d in done] == [0.0, 2.0, 4.0]
    assert {d.batch_size for d in done} == {3}
    assert len({d.batch_id for d in done}) == 1
    assert all(d.queued_s == 0.0 and d.compute_s == 0.0 for d in done)  # the fake clock stood still


async def test_next_batch_fills_while_one_runs_and_lengths_never_mix(
    batcher: Batcher[F32, F32], runner: Runner
) -> None:
    runner.gate.clear()
    first = batcher.submit(items(5))
    await runner.running.wait()
    later = batcher.submit(items(5, 5, 9, 5, 5, 9))  # arrive while the first batch runs
    assert batcher.queued == 6
    runner.gate.set()
    await asyncio.gather(*first, *later)
    assert runner.batches == [[5], [5, 5, 5, 5], [9, 9]]


async def test_cost_budget_caps_a_batch(runner: Runner, clock: Clock) -> None:
    b = await make(runner, clock, max_batch_size=8, max_batch_cost=20)
    runner.gate.clear()
    first = b.submit(items(1))
    await runner.running.wait()
    rest = b.submit(items(7, 7, 7, 7))
    runner.gate.set()
    await asyncio.gather(*first, *rest)
    await b.close()
    assert runner.batches == [[1], [7, 7], [7, 7]]


async def test_full_queue_rejects_at_once_and_queues_nothing(batcher: Batcher[F32, F32], runner: Runner) -> None:
    runner.gate.clear()
    batcher.submit(items(3))
    await runner.running.wait()
    batcher.submit(items(*[3] * 8))
    with pytest.raises(Overloaded, match=r"the queue is full \(8 of 10 windows waiting\)") as info:
        batcher.submit(items(3, 3, 3))
    assert info.value.retry_after_s is not None and info.value.retry_after_s >= 1
    assert batcher.queued == 8


async def test_expired_items_are_answered_and_never_computed(
    batcher: Batcher[F32, F32], runner: Runner, clock: Clock
) -> None:
    runner.gate.clear()
    batcher.submit(items(3))
    await runner.running.wait()
    late = batcher.submit(items(4, 4), deadline=clock.now + 1)
    fine = batcher.submit(items(4), deadline=clock.now + 100)
    clock.now += 2
    runner.gate.set()
    for future in late:
        with pytest.raises(DeadlineExceeded):
            await future
    await asyncio.gather(*fine)
    assert runner.batches == [[3], [4]]


async def test_cancelled_items_are_dropped(batcher: Batcher[F32, F32], runner: Runner) -> None:
    runner.gate.clear()
    batcher.submit(items(3))
    await runner.running.wait()
    gone = batcher.submit(items(6, 6))
    kept = batcher.submit(items(6))
    for future in gone:
        future.cancel()
    runner.gate.set()
    await asyncio.gather(*kept)
    assert runner.batches == [[3], [6]]
    assert batcher.queued == 0


async def test_a_failing_batch_fails_each_of_its_callers(batcher: Batcher[F32, F32], runner: Runner) -> None:
    runner.fail = KeyError("x")
    futures = batcher.submit(items(2, 2))
    for future in futures:
        with pytest.raises(BackendError, match="batch failed: KeyError"):
            await future
    runner.fail = None
    assert len(await asyncio.gather(*batcher.submit(items(2)))) == 1  # and the batcher goes on


async def test_close_answers_queued_items_unavailable(runner: Runner, clock: Clock) -> None:
    b = await make(runner, clock, max_batch_size=4, max_batch_cost=100)
    runner.gate.clear()
    running = b.submit(items(3))
    await runner.running.wait()
    queued = b.submit(items(5))
    closing = asyncio.create_task(b.close())
    await asyncio.sleep(0)
    runner.gate.set()
    await closing
    assert (await running[0]).batch_size == 1  # the running batch finishes
    with pytest.raises(Unavailable, match="shutting down"):
        await queued[0]
    with pytest.raises(Unavailable):
        b.submit(items(1))


async def test_waits_for_the_delay_to_fill_a_batch(runner: Runner) -> None:
    b = await make(runner, max_batch_size=3, max_delay_s=60.0)
    first = b.submit(items(4))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert runner.batches == []  # not full, not due: waits
    rest = b.submit(items(4, 4))  # now full: leaves at once
    await asyncio.gather(*first, *rest)
    await b.close()
    assert runner.batches == [[4, 4, 4]]


def test_frame_budget_follows_the_model_width() -> None:
    from service.core.backend import ModelInfo
    from service.core.inference import frame_budget

    def info(width: int) -> ModelInfo:
        return ModelInfo("m", "c", 0, 243, False, "w", "fp32", "cpu", hyperparams={"dim_feat": width})

    assert [frame_budget(info(w)) for w in (64, 128, 256, 512)] == [640, 320, 160, 80]


async def test_several_batches_in_flight_when_the_backend_takes_them(runner: Runner, clock: Clock) -> None:
    b = await make(runner, clock, max_batch_size=2, max_running=2)
    runner.gate.clear()
    first = b.submit(items(3, 3))
    second = b.submit(items(3, 3))
    third = b.submit(items(3))
    for _ in range(10):
        await asyncio.sleep(0)
    assert runner.batches == [[3, 3], [3, 3]]  # two running at once; the third waits for a free slot
    runner.gate.set()
    await asyncio.gather(*first, *second, *third)
    await b.close()
    assert runner.batches == [[3, 3], [3, 3], [3]]


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_batch_that_cannot_grow_goes_ahead_and_one_that_can_waits(runner: Runner, clock: Clock) -> None:
    b = await make(runner, clock, max_batch_size=2, max_queued=6)
    b.max_ahead = 1
    runner.gate.clear()
    first = b.submit(items(3, 3))
    await runner.running.wait()
    partial = b.submit(items(4))  # due (no delay) but it can still grow: it waits for the running batch
    await settle()
    assert runner.batches == [[3, 3]]
    more = b.submit(items(4))  # now full (2 items): it goes ahead, beside the running one
    await settle()
    assert runner.batches == [[3, 3], [4, 4]]
    last = b.submit(items(5, 5))  # full too, but one batch is ahead already
    await settle()
    assert runner.batches == [[3, 3], [4, 4]]
    runner.gate.set()
    await asyncio.gather(*first, *partial, *more, *last)
    await b.close()
    assert runner.batches == [[3, 3], [4, 4], [5, 5]]


async def test_a_full_queue_sends_its_batch_ahead_and_it_stays_queued_until_it_starts(
    runner: Runner, clock: Clock
) -> None:
    b = await make(runner, clock, max_batch_size=4, max_queued=3)
    b.max_ahead = 1
    runner.gate.clear()
    first = b.submit(items(3))
    await runner.running.wait()
    queued = b.submit(items(3, 3, 3))  # the queue is at its bound: nothing more can join this batch
    await settle()
    assert runner.batches == [[3], [3, 3, 3]]
    # Sent ahead, its items still wait (behind the running batch): the bound holds.
    assert b.queued == 3
    with pytest.raises(Overloaded, match=r"the queue is full \(3 of 3 windows waiting\)"):
        b.submit(items(3))
    runner.gate.set()
    await asyncio.gather(*first, *queued)
    assert b.queued == 0
    await b.close()


async def test_a_batch_sent_ahead_counts_its_wait_for_the_model_as_queueing(clock: Clock) -> None:
    model = asyncio.Lock()  # one model: a batch sent ahead waits for the one before it, as in an instance's pipe
    release = [asyncio.Event(), asyncio.Event()]
    sent: list[int] = []

    async def run(batch: list[F32]) -> Sequence[F32]:
        sent.append(len(batch[0]))
        async with model:
            await release[0 if len(batch[0]) == 3 else 1].wait()
            clock.now += 2.0  # each batch computes for 2 s
            return list(batch)

    b: Batcher[F32, F32] = Batcher(
        run, key=len, cost=len, max_batch_size=1, max_batch_cost=100, max_delay_s=0.0, max_queued=4, clock=clock
    )
    b.max_ahead = 1
    await b.start()
    first = b.submit(items(3))
    await settle()
    ahead = b.submit(items(4))  # full (1 item): sent ahead at t=1000
    await settle()
    assert sent == [3, 4]
    clock.now += 1.0  # the first batch has run 1 s when its compute starts being counted: 2 s more
    release[0].set()
    release[1].set()
    done = await asyncio.gather(*first, *ahead)
    await b.close()
    assert (done[0].queued_s, done[0].compute_s) == (0.0, 3.0)
    # The second waited at the model from 1000 until the first ended at 1003, then computed 2 s.
    assert (done[1].queued_s, done[1].compute_s) == (3.0, 2.0)
