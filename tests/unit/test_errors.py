"""``LiftError.retry_after``: the one place the HTTP ``Retry-After`` value is made (the REST error handler and the
raw refusal path both use it)."""

from __future__ import annotations

import pytest

from service.errors import Overloaded, QuotaExceeded


@pytest.mark.parametrize(("seconds", "header"), [(1.4, "2"), (1.74, "2"), (2.0, "2"), (0.2, "1"), (0.0, "1")])
def test_retry_after_rounds_up_to_whole_seconds_and_is_at_least_one(seconds: float, header: str) -> None:
    assert QuotaExceeded("over", retry_after_s=seconds).retry_after() == header


def test_retry_after_is_one_second_when_unset() -> None:
    assert Overloaded("queue is full").retry_after() == "1"
