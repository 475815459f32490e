"""The benchmark suite runs, reports in the documented shape, and really checks deliveries.

``python -m bench --quick --json`` (every scenario, chinwag and the baseline,
small sizes) must finish with every delivery verified; a baseline that drops,
doubles or reorders one copy on purpose must be caught by the same checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.bench import run_bench

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = {"burst", "rate", "idle", "dm", "reconnect"}


@pytest.mark.timeout(120)
def test_quick_run_reports_every_scenario_with_every_delivery_verified() -> None:
    code, report, table = run_bench("--quick")
    assert code == 0, table[-4000:]
    assert {"machine", "summary", "targets", "runs", "pinned", "repeat"} <= report.keys()
    assert report["machine"]["nproc"] >= 1 and report["machine"]["python"]

    runs = report["runs"]
    assert {r["scenario"] for r in runs} == SCENARIOS
    for r in runs:
        assert r["ok"], r
        assert r["metrics"]["verified"], r
    by = {(r["scenario"], r["server"]) for r in runs}
    for scenario in SCENARIOS - {"reconnect"}:
        assert (scenario, "chinwag") in by and (scenario, "baseline") in by
    assert ("reconnect", "chinwag") in by  # the baseline has no accounts

    for r in runs:
        gen = r["generator"]
        if r["scenario"] in ("burst", "rate"):
            (g,) = gen
            check = g["check"]
            assert g["deliveries"] == g["expected_deliveries"] == g["messages"] * g["clients"]
            assert check["missing"] == check["duplicates"] == check["reordered"] == 0
            assert g["acks"] == g["messages"]
            assert g["latency_ms"]["n"] == g["deliveries"]  # a latency for every delivery
            assert r["metrics"]["cpu_us_per_delivery"] > 0
            assert r["samples"]["end"]["cpu"] >= r["samples"]["start"]["cpu"]
        elif r["scenario"] == "idle":
            assert sum(g["alive_after_hold"] for g in gen) == r["metrics"]["clients"]
            # Reported, but not signed: a quick run's few connections are within the
            # noise of the process's RSS (it came out negative on a loaded machine).
            assert isinstance(r["metrics"]["kib_per_conn"], float)
        elif r["scenario"] == "dm":
            (g,) = gen
            assert g["acks"] == g["dms"] and g["check"]["missing"] == 0
            assert g["deliveries"] == 2 * g["dms"]  # the partner's copy and the sender's own
        elif r["scenario"] == "reconnect":
            (g,) = gen
            assert g["logged_in"] == g["accounts"]
            assert g["replayed"] == g["accounts"] * g["backlog_per_account"]

    burst = [row for row in report["summary"] if row["scenario"] == "burst"]
    assert {row["params"]["readers"] for row in burst} == {"eager", "relaxed"}
    for row in burst:
        assert row["ratio"]["deliveries_per_s"] > 0
        assert row["ratio"]["cpu_us_per_delivery"] > 0
    assert any("nothing lost" in t["target"] and t["met"] for t in report["targets"])
    assert "Fan-out burst" in table and "c/b" in table


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("fault", "counter"), [("drop", "missing"), ("dup", "duplicates"), ("reorder", "reordered")]
)
def test_a_misdelivered_copy_is_caught(fault: str, counter: str) -> None:
    code, report, table = run_bench(
        "--quick",
        "--only",
        "burst",
        "--servers",
        "baseline",
        "--readers",
        "eager",
        "--baseline-fault",
        fault,
    )
    assert code == 1, table[-4000:]
    (run,) = report["runs"]
    assert not run["ok"] and not run["metrics"]["verified"]
    check = run["generator"][0]["check"]
    assert check[counter] >= 1, check
    assert check["receivers_checked_alone"] >= 1
