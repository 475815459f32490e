"""``python -m chinwag`` as a subprocess, for the tests of the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI_TIMEOUT = 60.0  # seconds one command may take before the test fails


def chinwag(
    *args: str, stdin: str | None = None, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``chinwag ARGS`` to its end; its output is captured as text.

    Args:
        args: the command line after ``chinwag``.
        stdin: what it reads on standard input (None: nothing, end of file at once).
        config: its configuration directory (``CHINWAG_CONFIG_DIR``), so that it
            never reads or writes the user's own.

    Raises:
        subprocess.TimeoutExpired: it ran longer than `CLI_TIMEOUT` (it is killed).
    """
    env = {**os.environ, "CHINWAG_CONFIG_DIR": str(config)} if config is not None else None
    return subprocess.run(
        [sys.executable, "-m", "chinwag", *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=env,
    )
