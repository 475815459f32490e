"""Where a bot keeps its password: ``credentials.json`` in its data directory.

A bot registers its nick on first run with a random password, which it must
find again on every later run. The file holds one entry per nick (comparison
form), is written atomically (a temporary file, then a rename) and is readable
by its owner only (mode 0600). The password is written *before* the bot
registers, so a crash in between cannot leave an account nobody can log in to.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from chinwag.client.events import fold_nick

__all__ = ["CREDENTIALS_FILE", "Credentials", "load_credentials", "save_credentials"]

CREDENTIALS_FILE: Final = "credentials.json"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A bot account's login.

    Attributes:
        nick: the nick, as given.
        password: its password.
        registered: whether the server confirmed the registration.
    """

    nick: str
    password: str
    registered: bool = False


def _read(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ValueError(f"{path} is damaged: {exc}") from exc
    accounts = data.get("accounts") if isinstance(data, dict) else None
    if not isinstance(accounts, dict):
        raise ValueError(f"{path} is damaged: no 'accounts'")
    return accounts


def load_credentials(data_dir: Path, nick: str) -> Credentials:
    """The stored login for ``nick``, or a new one (random password, not yet saved).

    Raises:
        ValueError: the file exists but cannot be read as credentials.
    """
    entry = _read(data_dir / CREDENTIALS_FILE).get(fold_nick(nick))
    if isinstance(entry, dict):
        password, registered = entry.get("password"), entry.get("registered")
        if isinstance(password, str) and password:
            return Credentials(nick, password, registered is True)
    return Credentials(nick, secrets.token_urlsafe(24))


def save_credentials(data_dir: Path, creds: Credentials) -> None:
    """Store ``creds`` (other nicks' entries are kept), readable by the owner only."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / CREDENTIALS_FILE
    accounts = _read(path)
    accounts[fold_nick(creds.nick)] = {
        "nick": creds.nick,
        "password": creds.password,
        "registered": creds.registered,
    }
    text = json.dumps({"accounts": accounts}, indent=2, ensure_ascii=False) + "\n"
    tmp = data_dir / f".{CREDENTIALS_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
