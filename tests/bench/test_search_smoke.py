"""``python -m bench --only search``: the same messages searched on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.bench import run_bench
from support.services import missing

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_the_search_scenario_finds_the_same_messages_on_both_backends() -> None:
    if shutil.which("pg_isready") is None or shutil.which("redis-server") is None:
        missing("PostgreSQL and Redis")
    args = ["--only", "search", "--quick", "--search-sizes", "2000"]
    code, report, stderr = run_bench(*args, timeout=200)
    assert code == 0, stderr[-3000:]
    assert report["ok"], report["error"]
    rows = {(r["backend"], r["query"]): r for r in report["search"]}
    assert {b for b, _ in rows} == {"sqlite", "postgres"}
    for backend in ("sqlite", "postgres"):
        assert rows[backend, "rare"]["found"] == 10  # the 10 lobby messages with the word
        assert rows[backend, "hidden"]["found"] == 0  # only in rooms the asker is not in
        assert rows[backend, "history"]["found"] == 20
        assert all(0 < r["p50_ms"] <= r["p99_ms"] for (b, _), r in rows.items() if b == backend)
    assert rows["postgres", "common"]["found"] == rows["sqlite", "common"]["found"] > 0
    assert "2,000 loaded" in stderr  # the load's progress
    assert "postgres p99" in stderr  # the table, side by side


def test_an_unknown_search_backend_is_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "search", "--search-backends", "mysql"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown --search-backends ['mysql']" in proc.stderr
