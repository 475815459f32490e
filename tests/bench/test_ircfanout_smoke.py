"""``python -m bench --only ircfanout`` measures IRC and JSON-lines fan-out against one server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(150)
def test_the_irc_fan_out_scenario_delivers_everything_and_reports_both_protocols() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDEVMODE", "PYTHONASYNCIODEBUG")}
    args = ["--only", "ircfanout", "--quick", "--no-pin", "--irc-clients", "20", "--json"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["ok"] and report["clients"] == 20 and report["messages"] == 10
    per = report["server_cpu_us_per_delivery"]
    # Each phase ends only once every receiver counted every message: a number is a pass.
    assert per["tcp"] > 0 and per["irc"] > 0
    assert report["irc_over_tcp"] == round(per["irc"] / per["tcp"], 2)
    assert report["irc_caps"] == "message-tags server-time"
    assert "IRC" in proc.stderr


def test_ircfanout_runs_alone() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "ircfanout,burst"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--only ircfanout runs alone" in proc.stderr
