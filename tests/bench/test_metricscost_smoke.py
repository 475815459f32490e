"""``python -m bench --only metrics-cost``: the burst with metrics on and off, interleaved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.bench import run_bench

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(150)
def test_the_metrics_cost_scenario_runs_both_sides_and_the_off_side_counts_nothing() -> None:
    args = ["--only", "metrics-cost", "--quick", "--no-pin", "--burst-sizes", "20"]
    code, report, stderr = run_bench(*args, "--metrics-pairs", "2", timeout=120)
    assert code == 0, stderr[-3000:]
    assert report["ok"] and report["case"] == "n=20 eager" and report["pairs"] == 2
    on, off = report["runs"]["on"], report["runs"]["off"]
    assert [r["pair"] for r in on] == [r["pair"] for r in off] == [0, 1]
    # Scraped after each phase: the "on" server counted every checked delivery,
    # the "off" one counted nothing and said so.
    for r in on:
        assert r["metrics_status"] == 200 and r["metrics_deliveries"] == r["deliveries"] > 0
    for r in off:
        assert r["metrics_status"] == 404 and r["metrics_deliveries"] is None
    medians = report["median_cpu_us_per_delivery"]
    assert medians["on"] > 0 and medians["off"] > 0
    assert report["on_over_off_percent"] == round(
        (medians["on"] - medians["off"]) / medians["off"] * 100, 2
    )
    assert len(report["paired_percent"]) == 2
    counting = report["counting"]  # the counting's own work, timed in the bench's process
    assert counting["us_per_message"] > 0
    assert counting["us_per_delivery"] == pytest.approx(counting["us_per_message"] / 20, abs=1e-5)
    assert "on - off:" in stderr and "the counting's own work" in stderr


def test_metrics_cost_runs_alone() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "metrics-cost,burst"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--only metrics-cost runs alone" in proc.stderr
