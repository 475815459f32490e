"""Token buckets for flood control, with the clock injected."""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; starts full.

    A bucket may go into debt (down to ``-burst``) when something turns out to
    cost more than was checked before it was done (a long reply): later
    requests then wait until the debt is paid.
    """

    __slots__ = ("_burst", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def retry_after(self, need: float = 1.0) -> float:
        """0 when ``need`` tokens are available now, else the seconds until they are."""
        self._refill()
        if self._tokens >= need:
            return 0.0
        if self._rate <= 0:
            return 3600.0
        return (need - self._tokens) / self._rate

    def take(self, cost: float = 1.0) -> None:
        """Spend ``cost`` tokens (after ``retry_after()`` returned 0, or as debt)."""
        self._tokens = max(self._tokens - cost, -self._burst)

    def refund(self, cost: float = 1.0) -> None:
        """Give back tokens spent on something that turned out not to count."""
        self._tokens = min(self._burst, self._tokens + cost)


class Budget:
    """What one session may spend: its own bucket and, for an account, the bucket
    that all of the account's sessions share (so many connections of one account
    do not multiply its budget). The interface is `TokenBucket`'s.
    """

    __slots__ = ("_own", "_shared")

    def __init__(self, own: TokenBucket, shared: TokenBucket | None = None) -> None:
        self._own = own
        self._shared = shared

    def share(self, shared: TokenBucket) -> None:
        """From now on, also spend from ``shared`` (a guest that became an account)."""
        self._shared = shared

    def retry_after(self, need: float = 1.0) -> float:
        """0 when both buckets hold ``need`` tokens now, else the longer wait."""
        wait = self._own.retry_after(need)
        if self._shared is not None:
            wait = max(wait, self._shared.retry_after(need))
        return wait

    def take(self, cost: float = 1.0) -> None:
        self._own.take(cost)
        if self._shared is not None:
            self._shared.take(cost)

    def refund(self, cost: float = 1.0) -> None:
        self._own.refund(cost)
        if self._shared is not None:
            self._shared.refund(cost)
