"""The door's reservations (service/core/admission.py): room per admitted request, learnt sizes, expiry."""

from __future__ import annotations

import pytest

from service.core.admission import Door


def test_it_admits_while_the_free_windows_cover_one_more_typical_request() -> None:
    door = Door(100, hold_s=1.0)
    door.typical = 4.0
    assert [door.admit(free=10, now=0.0) for _ in range(3)] == [True, True, False]  # 4 + 4 fit in 10; 12 do not
    assert door.held == 2


def test_a_request_that_reaches_the_queue_ends_its_reservation_and_teaches_the_size() -> None:
    door = Door(100, hold_s=1.0, weight=0.5)
    assert door.admit(free=4, now=0.0)
    door.settle(9)
    assert (door.held, door.typical) == (0, 5.0)  # 1 + 0.5 * (9 - 1)
    door.settle(None)  # nothing held: nothing to end, nothing learnt
    assert (door.held, door.typical) == (0, 5.0)
    assert not door.admit(free=4, now=0.0)  # a 5-window request would not fit in 4


def test_a_reservation_that_is_never_settled_expires() -> None:
    door = Door(100, hold_s=0.5)
    assert door.admit(free=1, now=10.0)
    assert not door.admit(free=1, now=10.4)
    assert door.admit(free=1, now=10.5)
    assert door.held == 1


def test_a_request_larger_than_the_queue_teaches_nothing_so_an_empty_queue_still_admits() -> None:
    door = Door(16)
    door.settle(40_000)  # refused 413: it could never be queued
    assert door.typical == 1.0
    assert door.admit(free=16, now=0.0)


def test_bad_parameters_are_refused() -> None:
    for kwargs in ({"capacity": 0}, {"capacity": 1, "hold_s": 0}, {"capacity": 1, "weight": 1.5}):
        with pytest.raises(ValueError, match="capacity must be >= 1, hold_s > 0 and weight in"):
            Door(**kwargs)
