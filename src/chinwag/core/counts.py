"""What the server counts for ``/metrics``: plain ints, cheap on the hot path.

The hot path adds to int attributes (once per message or per fan-out, not per
recipient where it can) and a histogram's bucket; nothing is formatted or
locked there. ``chinwag.server.metrics`` reads them when ``/metrics`` is scraped.
"""

from __future__ import annotations

from collections import OrderedDict

from chinwag.storage.base import Histogram

# Messages in a login's backlog (the offline backlog sizes).
BACKLOG_BUCKETS = (0.0, 1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0)
PUBLISHED_MAX = 65_536  # commits awaiting fan-out remembered for the lag (beyond: the oldest go)


class Counts:
    """The server's counters since it started (one per hub)."""

    __slots__ = (
        "ack_seconds",
        "backlogs",
        "cut_offs",
        "deliveries",
        "fanout_lag",
        "gap_messages",
        "gap_reads",
        "login_failures",
        "logins",
        "messages",
        "on",
        "published",
        "rate_limited",
    )

    def __init__(self, on: bool = True) -> None:
        # Off (setting ``metrics = false``): every place that counts checks this
        # first and counts nothing; the values stay 0.
        self.on = on
        self.logins = 0  # hellos that started a session
        self.login_failures = 0  # hellos refused (bad password, nick taken, ...)
        self.messages = 0  # messages and events committed and published (not resends)
        self.deliveries = 0  # copies of messages handed to live sessions
        self.gap_reads = 0  # reads of messages the bus skipped (ids beyond the next one)
        self.gap_messages = 0  # messages those reads brought
        self.cut_offs = 0  # connections cut off for not reading (out_buffer_limit)
        self.rate_limited = 0  # commands refused with rate_limited
        self.ack_seconds = Histogram()  # from a message's command to its ack
        # -- fan-out lag and backlog sizes (issue 17) --
        # Committed here, not fanned out yet: message id -> monotonic time of its ack.
        self.published: OrderedDict[int, float] = OrderedDict()
        self.fanout_lag = Histogram()  # from a commit's ack to its copies' hand-over
        self.backlogs = Histogram(BACKLOG_BUCKETS)  # messages in each login's backlog

    def committed(self, message_id: int, now: float) -> None:
        """Message ``message_id`` was committed here and acked at ``now`` (monotonic)."""
        published = self.published
        published[message_id] = now
        if len(published) > PUBLISHED_MAX:  # nothing fans out (a test without delivery)
            published.popitem(last=False)

    def fanned_out(self, upto_id: int, now: float) -> None:
        """Every message up to ``upto_id`` was handed to its connections at ``now``."""
        published = self.published
        while published:
            message_id, acked = next(iter(published.items()))
            if message_id > upto_id:
                return
            del published[message_id]
            self.fanout_lag.observe(now - acked)

    def lag(self, now: float) -> float:
        """Seconds the oldest commit not yet fanned out has waited (0: none waits)."""
        for acked in self.published.values():
            return max(0.0, now - acked)
        return 0.0


class Discard(Histogram):
    """A histogram that keeps nothing: the store's commit timer when metrics are off."""

    __slots__ = ()

    def observe(self, value: float) -> None:
        """Forget ``value``."""
