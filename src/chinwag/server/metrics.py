"""``/metrics``: the server's counts in the Prometheus text format (prometheus-client).

Nothing here runs on the hot path: the hub, the store and the connections add
to plain ints (`chinwag.core.counts`), and `ServerCollector` reads them when
``/metrics`` is scraped. Only loopback clients are answered unless
``metrics_public`` is set (`metrics_allowed`).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from itertools import accumulate
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from chinwag.bus.base import Bus
from chinwag.core.hub import Hub
from chinwag.storage.base import Histogram, Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TRANSPORTS = ("json", "ws", "irc")


class Source(Protocol):
    """What the collector reads: the running server (`chinwag.server.app.Server`)."""

    hub: Hub
    store: Store
    bus: Bus

    def connections(self) -> dict[str, int]:
        """Open connections by transport: ``json``, ``ws``, ``irc``."""
        ...


def metrics_allowed(peer: str | None, public: bool) -> bool:
    """Whether a client at address ``peer`` may read ``/metrics``: loopback, or ``public``."""
    if public:
        return True
    if peer is None:
        return False
    try:
        return ipaddress.ip_address(peer.split("%", 1)[0]).is_loopback
    except ValueError:  # a Unix socket's path, or nothing an IP parser reads
        return False


def _histogram(name: str, doc: str, hist: Histogram) -> HistogramMetricFamily:
    cumulative = list(accumulate(hist.counts))
    buckets = [(f"{b:g}", c) for b, c in zip(hist.bounds, cumulative, strict=False)]
    buckets.append(("+Inf", cumulative[-1]))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=hist.total)


class ServerCollector(Collector):
    """The server's counts, read at scrape time."""

    def __init__(self, source: Source) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        source = self._source
        counts = source.hub.counts
        conns = GaugeMetricFamily(
            "chinwag_connections", "open chat connections by transport", labels=["transport"]
        )
        by_transport = source.connections()
        for transport in TRANSPORTS:
            conns.add_metric([transport], by_transport.get(transport, 0))
        yield conns
        for name, doc, value in (
            ("chinwag_logins", "hellos that started a session", counts.logins),
            (
                "chinwag_login_failures",
                "hellos refused (a wrong password, a nick taken or reserved...)",
                counts.login_failures,
            ),
            (
                "chinwag_messages",
                "messages and events committed (a resent cid is not counted again)",
                counts.messages,
            ),
            (
                "chinwag_deliveries",
                "copies of committed messages handed to live sessions",
                counts.deliveries,
            ),
            (
                "chinwag_slow_reader_cutoffs",
                "connections cut off for not reading (out_buffer_limit)",
                counts.cut_offs,
            ),
            ("chinwag_rate_limited", "commands refused with rate_limited", counts.rate_limited),
            (
                "chinwag_bus_gap_refills",
                "reads from the store of messages the bus skipped (several nodes, a Resync)",
                counts.gap_reads,
            ),
            (
                "chinwag_bus_gap_messages",
                "messages delivered from those reads",
                counts.gap_messages,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield _histogram(
            "chinwag_ack_seconds",
            "seconds from a message's checks to its ack (the store's commit included)",
            counts.ack_seconds,
        )
        yield _histogram(
            "chinwag_store_commit_seconds",
            "seconds one batch of writes took to commit",
            source.store.commit_seconds,
        )
        # -- fan-out lag, backlog sizes, bus lag (issue 17) --
        yield _histogram(
            "chinwag_fanout_lag_seconds",
            "seconds from a message's commit (its ack) here to its copies handed to the"
            " connections",
            counts.fanout_lag,
        )
        yield GaugeMetricFamily(
            "chinwag_fanout_lag_now_seconds",
            "seconds the oldest message committed here and not yet fanned out has waited",
            value=counts.lag(time.monotonic()),
        )
        yield _histogram(
            "chinwag_login_backlog_messages",
            "messages in each account login's offline backlog (before backlog_limit)",
            counts.backlogs,
        )
        yield _histogram(
            "chinwag_bus_lag_seconds",
            "seconds from another node's publish to Redis to this node's read (several nodes;"
            " the two clocks' difference included)",
            source.bus.lag_seconds,
        )
        yield GaugeMetricFamily(
            "chinwag_bus_up",
            "1 while the bus hears the other nodes (always for one node), else 0",
            value=0 if source.bus.trouble() else 1,
        )


class Metrics:
    """The ``/metrics`` page of one server."""

    def __init__(self, source: Source) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(ServerCollector(source))

    def page(self) -> bytes:
        """The text format of every metric, now."""
        return generate_latest(self._registry)
