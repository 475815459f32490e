"""``chinwag serve`` with a JSON-lines and an HTTP listener on loopback (for /ws and browsers)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import ServerProcess

_CHAT = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
_WEB = re.compile(r"open http://127\.0\.0\.1:(\d+)/ in a browser")
FAST = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}


class WebServer(ServerProcess):
    """``chinwag serve`` with a JSON-lines listener and the web listener on loopback.

    ``port`` is the JSON-lines TCP port (for TCP peers); ``base``/``url`` are the web
    listener's address. Both are free ports found at the first start, kept by later starts.
    """

    def __init__(self, data: Path, settings: dict[str, Any] | None = None) -> None:
        super().__init__(data, {**FAST, **(settings or {})})
        self.http_port = 0

    def start(self, timeout: float = 20.0) -> WebServer:
        self.data.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "chinwag", "serve", "--data", str(self.data)]
        args += ["--no-announce", "--listen", f"tcp://127.0.0.1:{self.port}"]
        args += ["--listen", f"http://127.0.0.1:{self.http_port}"]
        for name, value in self.settings.items():
            args += ["--set", f"{name}={value}"]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            chat, web = _CHAT.search(text), _WEB.search(text)
            if chat and web:
                self.port, self.http_port = int(chat.group(1)), int(web.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{text}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not start in {timeout} s:\n{self.log()}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        return f"{self.base}/"
