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
