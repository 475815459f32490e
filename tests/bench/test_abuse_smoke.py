"""The abuse scenarios run end to end at tiny sizes and report every attack.

``python -m bench --only abuse --quick`` with shorter phases: every attack must
run to its end against a real server (whatever the verdicts on this code), and
the table and the JSON report must have a row for each, with the honest
user's figures in both phases and the server's /proc samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.abuse import ATTACKS, KINDS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(150)
def test_quick_abuse_run_reports_every_attack() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDEVMODE", "PYTHONASYNCIODEBUG")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--only",
            "abuse",
            "--quick",
            "--abuse-quiet",
            "0.4",
            "--abuse-seconds",
            "1.0",
            "--json",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=140,
    )
    table = proc.stderr
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"no JSON report (exit {proc.returncode}):\n{table[-4000:]}")
    assert proc.returncode == 0, table[-4000:]

    rows = {r["attack"]: r for r in report["rows"]}
    assert list(rows) == list(ATTACKS)
    for name, row in rows.items():
        assert row["ok"], row["error"]
        assert KINDS[name].label in table
        assert row["rss_peak_mib"] >= row["rss_before_mib"] > 0
        assert row["cpu_s"] >= 0
        for phase in (row["quiet"], row["under"]):
            assert phase["sent"] > 0
            assert phase["latency_ms"]["n"] + phase["lost"] == phase["sent"]
        assert row["checks"] and row["checks"][0]["target"].startswith("honest p99")
        assert row["figure"]

    guess = rows["guess"]["details"]
    # Per (account, address), capped in all: the limit is what the guessing
    # addresses may try together (see bench.abuse.guess_limit).
    per, total = (
        report["settings"][k] for k in ("login_fail_account_max", "login_fail_account_global_max")
    )
    assert guess["limit"] in {min(n * per, total) for n in range(1, 9)}
    assert guess["hashed"] <= guess["limit"]
    assert guess["hashed"] == guess["answers"].get("bad_password", 0) + guess["answers"].get(
        "welcome", 0
    )
    assert sum(guess["answers"].values()) > 0
    assert sum(rows["register"]["details"]["answers"].values()) > 0
    typing = rows["typing"]["details"]
    assert typing["who_answered"] > 0 and typing["typing_received"] > 0
    stalled = rows["stalled"]["details"]
    assert stalled["logins"] == stalled["welcomed"] == report["sizes"]["stalled_logins"]
    assert rows["fds"]["details"]["connected"] > 0
    assert "verdict" in table
