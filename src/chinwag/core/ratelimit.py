"""Token buckets for flood control, with the clock injected."""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; starts full."""

    __slots__ = ("_burst", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def retry_after(self) -> float:
        """0 when a token is available now, else the seconds until one is."""
        self._refill()
        if self._tokens >= 1.0:
            return 0.0
        if self._rate <= 0:
            return 3600.0
        return (1.0 - self._tokens) / self._rate

    def take(self) -> None:
        """Spend one token (call after ``retry_after()`` returned 0)."""
        self._tokens -= 1.0

    def refund(self) -> None:
        """Give back a token spent on something that turned out not to count."""
        self._tokens = min(self._burst, self._tokens + 1.0)
