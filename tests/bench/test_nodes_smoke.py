"""``python -m bench --only nodes``: SQLite, PostgreSQL and two PostgreSQL nodes in one run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.services import missing

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_the_nodes_scenario_delivers_everything_on_each_set_up_and_reports_them() -> None:
    if shutil.which("redis-server") is None or shutil.which("pg_isready") is None:
        missing("PostgreSQL and Redis")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDEVMODE", "PYTHONASYNCIODEBUG")}
    args = ["--only", "nodes", "--quick", "--no-pin", "--nodes-clients", "10", "--json"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["ok"] and report["clients"] == 10 and report["messages"] == 20
    setups = report["setups"]
    # A phase ends only once every receiver has every message: a number is a pass.
    assert all(setups[s]["node_cpu_us_per_delivery"] > 0 for s in setups)
    assert sorted(setups) == ["postgres", "postgres x2", "sqlite"]
    assert setups["postgres"]["db_and_redis_cpu_us_per_delivery"] > 0, "PostgreSQL did work"
    assert set(setups["postgres x2"]["latency_ms"]) == {"same", "other"}, "deliveries crossed"
    assert "postgres x2" in proc.stderr


def test_nodes_runs_alone() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "nodes,burst"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--only nodes runs alone" in proc.stderr


@pytest.mark.timeout(240)
def test_nodes_latency_measures_both_nodes_at_a_rate_and_catches_up_after_a_redis_outage() -> None:
    if shutil.which("redis-server") is None or shutil.which("pg_isready") is None:
        missing("PostgreSQL and Redis")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDEVMODE", "PYTHONASYNCIODEBUG")}
    args = ["--only", "nodes-latency", "--quick", "--no-pin", "--nodes-clients", "6"]
    args += ["--nodes-seconds", "1", "--outage", "2", "--outage-rate", "20", "--json"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["ok"] and report["clients"] == 6 and report["rate"] == 200
    latency = report["fixed_rate"]["latency_ms"]
    assert set(latency) == {"same", "other"}, "receivers on both nodes, in the same phase"
    assert all(0 < q["p50_ms"] <= q["p99_ms"] for q in latency.values())
    assert report["fixed_rate"]["ack_ms"]["p50_ms"] > 0, "every ack lined up with its say"
    outage = report["outage"]
    # Redis was really down: node B's receivers heard nothing until it came back ...
    assert outage["outage_s"] >= 2 and outage["node_b_copies_during_outage"] == [0]
    # ... and then had every one of the 40 messages, once, in id order.
    assert outage["messages"] == 40 and 0 < outage["catch_up_s"] < 60
    zero = {"lost": 0, "duplicates": 0, "reordered": 0, "unacked": 0, "errors": 0}
    assert outage["checks"] == [zero] and report["fixed_rate"]["checks"] == [zero]
    assert "lost 0, duplicates 0" in proc.stderr


def test_nodes_latency_refuses_a_zero_outage_and_runs_alone() -> None:
    bench = [sys.executable, "-m", "bench", "--only"]
    zero = subprocess.run(
        [*bench, "nodes-latency", "--outage", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert zero.returncode == 2 and "--outage must be above 0" in zero.stderr
    mixed = subprocess.run(
        [*bench, "nodes-latency,burst"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert mixed.returncode == 2 and "--only nodes-latency runs alone" in mixed.stderr
