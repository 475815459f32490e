"""``python -m bench --only webload``: the web client loaded cold in Chromium, its times."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.timeout(150)
def test_the_web_load_scenario_reports_load_interactive_and_bytes() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test does)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDEVMODE", "PYTHONASYNCIODEBUG")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "webload", "--web-loads", "2", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["ok"] and report["loads"] == 2 and report["error"] == ""
    for name in ("page_load_ms", "interactive_ms"):
        # Each run ends only when the page loaded and the chat view took the focus.
        assert report[name]["n"] == 2
        assert set(report[name]) == {"n", "p50", "p99", "max"}
        assert len(report["runs_ms"][name.removesuffix("_ms")]) == 2
    # The page, its scripts and its style sheet: more than the HTML alone, and they compress.
    index = (REPO / "src/chinwag/web/static/index.html").stat().st_size
    assert report["first_load_bytes"] > index
    assert 0 < report["first_load_gzip_bytes"] < report["first_load_bytes"]
    assert set(report["loadavg_1min"]) == {"start", "end"}
    assert "Connect to interactive" in proc.stderr


def test_webload_runs_alone_and_needs_a_load() -> None:
    together = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "webload,burst"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert together.returncode == 2 and "--only webload runs alone" in together.stderr
    none = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "webload", "--web-loads", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert none.returncode == 2 and "1 or more" in none.stderr
