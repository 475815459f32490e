"""What the server counts for ``/metrics``: plain ints, cheap on the hot path.

The hot path adds to int attributes (once per message or per fan-out, not per
recipient where it can) and a histogram's bucket; nothing is formatted or
locked there. ``chinwag.server.metrics`` reads them when ``/metrics`` is scraped.
"""

from __future__ import annotations

from chinwag.storage.base import Histogram


class Counts:
    """The server's counters since it started (one per hub)."""

    __slots__ = (
        "ack_seconds",
        "cut_offs",
        "deliveries",
        "gap_messages",
        "gap_reads",
        "login_failures",
        "logins",
        "messages",
        "rate_limited",
    )

    def __init__(self) -> None:
        self.logins = 0  # hellos that started a session
        self.login_failures = 0  # hellos refused (bad password, nick taken, ...)
        self.messages = 0  # messages and events committed and published (not resends)
        self.deliveries = 0  # copies of messages handed to live sessions
        self.gap_reads = 0  # reads of messages the bus skipped (ids beyond the next one)
        self.gap_messages = 0  # messages those reads brought
        self.cut_offs = 0  # connections cut off for not reading (out_buffer_limit)
        self.rate_limited = 0  # commands refused with rate_limited
        self.ack_seconds = Histogram()  # from a message's command to its ack
