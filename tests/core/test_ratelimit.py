"""The command budget's buckets, on a clock the test moves (core/ratelimit.py)."""

from __future__ import annotations

import pytest

from chinwag.core.ratelimit import Budget, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_long_reply_leaves_debt_of_at_most_one_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(10.0, 20, clock)
    assert bucket.retry_after(1.0) == 0.0
    bucket.take(500.0)  # a reply far bigger than the burst
    # In debt by one burst, not 500 tokens: 2.1 s until one token is back.
    assert bucket.retry_after(1.0) == pytest.approx(2.1)
    clock.now += 2.2
    assert bucket.retry_after(1.0) == 0.0


def test_an_accounts_bucket_limits_every_session_that_shares_it() -> None:
    clock = Clock()
    shared = TokenBucket(0.0, 3, clock)
    phone = Budget(TokenBucket(0.0, 2, clock), shared)
    desk = Budget(TokenBucket(0.0, 2, clock), shared)
    for budget in (phone, phone, desk):
        assert budget.retry_after() == 0.0
        budget.take()
    assert desk.retry_after() > 0  # desk has a token of its own, the account has none
    desk.refund()  # something that did not count: both buckets get it back
    assert desk.retry_after() == 0.0


def test_a_guest_that_registers_starts_sharing() -> None:
    clock = Clock()
    budget = Budget(TokenBucket(0.0, 5, clock))
    budget.take(2.0)
    shared = TokenBucket(0.0, 1, clock)
    budget.share(shared)
    budget.take()
    assert budget.retry_after() > 0
