"""``python -m bench … --json`` as a subprocess, for the benchmarks' smoke tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_bench(*args: str, timeout: float = 100) -> tuple[int, dict[str, Any], str]:
    """Run the bench with ``args`` and ``--json``: (exit code, its report, its stderr).

    The tests' debug settings are left out (they would slow the servers it starts).
    The test fails, with the end of stderr, when no JSON report comes out.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDEVMODE", "PYTHONASYNCIODEBUG")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"no JSON report (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.returncode, report, proc.stderr
