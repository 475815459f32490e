"""The disk floor and the fsync trace of the rate scenario (issue 18)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.floor import sync_latency
from bench.report import targets
from bench.runner import STRACE, parse_syncs, strace_works, sync_metrics

SYNCING_CHILD = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT)
for _ in range(3):
    os.write(fd, b"x" * 4096)
    os.fdatasync(fd)
os.fsync(fd)
os.close(fd)
"""


def test_the_sync_floor_takes_the_count_asked_or_stops_at_its_time_bound(tmp_path: Path) -> None:
    full = sync_latency(str(tmp_path), 200, 60.0)
    assert full["syncs"] == 200
    assert 0 < full["p50_ms"] <= full["p99_ms"] <= full["p999_ms"] <= full["max_ms"]
    bounded = sync_latency(str(tmp_path), 1_000_000, 0.0)
    assert bounded["syncs"] == 1, "the time bound stops the syncs after the first"
    assert list(tmp_path.iterdir()) == [], "the scratch file is deleted"


@pytest.mark.skipif(not strace_works(), reason="strace cannot trace a child here")
def test_the_trace_finds_every_sync_of_the_server_and_their_durations(tmp_path: Path) -> None:
    log = tmp_path / "syncs.strace"
    subprocess.run(
        [*STRACE, "-o", str(log), sys.executable, "-c", SYNCING_CHILD, str(tmp_path / "f")],
        check=True,
        timeout=30,
    )
    syncs = parse_syncs(log)
    assert len(syncs) == 4, log.read_text()
    assert all(0 <= end - start < 5 for start, end in syncs)
    assert [s for s, _ in syncs] == sorted(s for s, _ in syncs)


def test_a_slow_copy_counts_as_waiting_on_a_sync_only_if_a_slow_sync_ran_meanwhile(
    tmp_path: Path,
) -> None:
    log = tmp_path / "syncs.strace"
    # Two threads' syncs interleaved (strace -f splits them): a slow one (10 ms)
    # and two fast ones (0.2 ms) in the phase, and one before it.
    log.write_text(
        "7 99.000000 fdatasync(5)    = 0 <0.050000>\n"
        "7 100.100000 fdatasync(5 <unfinished ...>\n"
        "8 100.101000 fsync(6)    = 0 <0.000200>\n"
        "7 100.110000 <... fdatasync resumed>) = 0 <0.010000>\n"
        "8 100.350000 fsync(6)    = 0 <0.000200>\n"
    )
    gen = {
        "t0_wall": 100.0,
        "t_end_wall": 101.0,
        # On its way while the slow sync ran; after it; while only a fast one ran.
        "slow_deliveries": [[100.105, 100.2], [100.5, 100.6], [100.3, 100.4]],
    }
    m = sync_metrics(log, gen)
    assert m["syncs"] == 3, "the sync before the phase is left out"
    assert m["sync_max_ms"] == pytest.approx(10.0)
    assert (m["slow_syncs"], m["slow_deliveries"], m["slow_waited_on_sync"]) == (1, 3, 1)
    json.dumps(m)  # goes into the JSON report as it is


def test_beyond_the_disk_is_what_a_slow_copy_took_after_the_first_sync_begun_after_its_send(
    tmp_path: Path,
) -> None:
    log = tmp_path / "syncs.strace"
    # A stall (200 ms) and two quick syncs after it.
    log.write_text(
        "7 100.000000 fdatasync(5)    = 0 <0.200000>\n"
        "7 100.201000 fdatasync(5)    = 0 <0.001000>\n"
        "7 100.400000 fdatasync(5)    = 0 <0.001000>\n"
    )
    gen = {
        "t0_wall": 99.9,
        "t_end_wall": 101.0,
        "slow_deliveries": [
            [99.95, 100.201],  # sent before the stall began: 1 ms after it ended
            [100.1, 100.214],  # sent during it: 12 ms after the next sync's end
            [100.5, 100.51],  # no sync began after it: all of its 10 ms
        ],
    }
    m = sync_metrics(log, gen)
    assert m["slow_waited_on_sync"] == 2
    assert m["slow_beyond_disk"] == 2, "12 ms and 10 ms are beyond the 3 ms margin, 1 ms is not"
    assert m["beyond_disk_p50_ms"] == pytest.approx(10.0)
    assert m["beyond_disk_max_ms"] == pytest.approx(12.0)
    os_mode = sync_metrics(log, gen, acks_wait_for_sync=False)
    assert "slow_beyond_disk" not in os_mode, "with os no ack waits for a sync"
    assert os_mode["slow_waited_on_sync"] == 2
    json.dumps(m)


def test_the_1000_msg_s_target_is_judged_on_a_1000_msg_s_run_only() -> None:
    def rate_row(rate: int, p99: float) -> dict[str, Any]:
        median = {"lat_p50_ms": 1.0, "lat_p99_ms": p99}
        return {
            "scenario": "rate",
            "size": 100,
            "params": {"rate": rate},
            "servers": {"chinwag": {"median": median, "verified": True}},
        }

    def judged(summary: list[dict[str, Any]]) -> dict[str, Any]:
        (row,) = [t for t in targets(summary) if t["target"].startswith("100 clients at 1,000")]
        return row

    assert judged([rate_row(200, 16.0)])["met"] is None, "a 200 msg/s run is not that target's"
    assert judged([rate_row(200, 16.0), rate_row(1000, 4.0)]) == {
        "target": "100 clients at 1,000 msg/s: p99 ≤ 5 ms",
        "value": "4.00 ms",
        "met": True,
    }
