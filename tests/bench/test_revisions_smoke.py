"""``python -m bench --only revisions``: messages, edits and reactions against one server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.bench import run_bench

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(150)
def test_the_revisions_scenario_checks_every_copy_and_reports_each_kind() -> None:
    args = ["--only", "revisions", "--quick", "--no-pin", "--rev-clients", "15"]
    code, report, stderr = run_bench(*args, timeout=120)
    assert code == 0, stderr[-3000:]
    # A phase ends only once every session got every event in id order with the
    # target and on/off asked for (else the run fails): a number is a pass.
    assert report["ok"] and report["sessions"] == 16 and report["events"] == 10
    kinds = report["kinds"]
    assert set(kinds) == {"message", "edit", "react"}
    for kind in kinds.values():
        assert kind["cpu_us_per_delivery"] > 0
        assert 0 < kind["latency_ms"]["p50_ms"] <= kind["latency_ms"]["p99_ms"]
    assert kinds["edit"]["over_message"] == round(
        kinds["edit"]["cpu_us_per_delivery"] / kinds["message"]["cpu_us_per_delivery"], 2
    )
    assert "x message" in stderr


def test_revisions_runs_alone() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "revisions,burst"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--only revisions runs alone" in proc.stderr
