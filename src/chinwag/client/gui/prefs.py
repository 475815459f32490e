"""What the desktop app remembers between runs: recent servers, the last nick, the theme.

Kept in ``gui.json`` in the client's config directory (see
:func:`chinwag.client.config.config_dir`). Passwords are never written here or
anywhere else: the app keeps a password in memory only, for the reconnects of
the login it was typed for.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from chinwag.client.config import config_dir

__all__ = ["PREFS_FILE", "Prefs", "ThemeName"]

PREFS_FILE: Final = "gui.json"
MAX_RECENT: Final = 8

ThemeName = Literal["light", "dark"]


@dataclass
class Prefs:
    """The app's remembered settings.

    Attributes:
        recent: servers connected to, the most recent first (``host:port``).
        nick: the nick used last.
        theme: ``light`` or ``dark``.
        receipts: DM receipts on (said to the server at each login of an account).
        path: the file they are kept in (None: not kept).
    """

    recent: list[str] = field(default_factory=list)
    nick: str = ""
    theme: ThemeName = "light"
    receipts: bool = False
    path: Path | None = None

    @classmethod
    def load(cls, directory: str | os.PathLike[str] | None = None) -> Prefs:
        """Read the settings; a missing or damaged file gives the defaults."""
        path = config_dir(directory) / PREFS_FILE
        prefs = cls(path=path)
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return prefs
        if not isinstance(data, dict):
            return prefs
        recent = data.get("recent")
        if isinstance(recent, list):
            prefs.recent = [s for s in recent if isinstance(s, str) and s][:MAX_RECENT]
        nick = data.get("nick")
        if isinstance(nick, str):
            prefs.nick = nick
        if data.get("theme") in ("light", "dark"):
            prefs.theme = data["theme"]
        prefs.receipts = data.get("receipts") is True
        return prefs

    def remember_server(self, server: str, nick: str) -> None:
        """Put ``server`` first in the recent list and remember ``nick``; then save."""
        self.recent = [server] + [s for s in self.recent if s != server]
        del self.recent[MAX_RECENT:]
        self.nick = nick
        self.save()

    def save(self) -> None:
        """Write the file (atomically); failures are ignored: these are conveniences."""
        if self.path is None:
            return
        data = {
            "recent": self.recent,
            "nick": self.nick,
            "theme": self.theme,
            "receipts": self.receipts,
        }
        tmp = self.path.with_name(f".{PREFS_FILE}.{secrets.token_hex(4)}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
