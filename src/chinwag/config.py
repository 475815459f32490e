"""Server settings: every limit named, with its default and a one-line description.

Settings come from defaults, then a TOML file (``--config``), then ``--set NAME=VALUE``
on the command line. ``chinwag serve --print-settings`` lists them all, and
``docs/configuration.md`` is the same table.
"""

from __future__ import annotations

import dataclasses
import socket
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _s(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True, slots=True)
class Settings:
    """Frozen server configuration. Times are in seconds, sizes in bytes."""

    host: str = _s("0.0.0.0", "address to listen on")
    port: int = _s(5050, "TCP port to listen on")
    data_dir: str = _s("", "directory for the database (default: the platform user-data dir)")
    server_name: str = _s("", "name in welcome and on the LAN (empty: this machine's host name)")
    motd: str = _s("Welcome to chinwag. Type /help for commands.", "message of the day")
    max_frame_bytes: int = _s(65_536, "longest client line accepted, \\r\\n included")
    max_bad_frames: int = _s(10, "bad frames in one connection before it is closed")
    max_failed_hellos: int = _s(5, "failed hellos in one connection before it is closed")
    prelogin_timeout: float = _s(60.0, "seconds a connection may take to log in")
    prelogin_max_frames: int = _s(50, "frames a connection may send before it logs in")
    idle_timeout: float = _s(60.0, "seconds without a client frame before the server pings")
    pong_timeout: float = _s(60.0, "seconds after that ping before the server closes")
    max_conns_per_address: int = _s(64, "open connections allowed from one client address")
    out_buffer_limit: int = _s(1_048_576, "unsent bytes to one client before it is cut off")
    backlog_limit: int = _s(10_000, "most messages replayed at login")
    retention_days: float = _s(30.0, "age of the oldest message replayed at login")
    offline_quota: int = _s(10_000, "undelivered DMs an offline account may hold")
    rate_per_second: float = _s(
        10.0, "command budget per session, in say/dm per second (flood control; see security.md)"
    )
    rate_burst: int = _s(20, "command budget burst per session, in say/dm (flood control)")
    presence_limit: int = _s(200, "online members above which a room gets no join/leave presence")
    history_default: int = _s(50, "messages in a history page when no limit is asked")
    history_max: int = _s(200, "most messages in one history page")
    history_max_bytes: int = _s(1_048_576, "most bytes of messages in one history page")
    cid_ttl: float = _s(86_400.0, "seconds a client id (cid) is remembered for dedupe")
    commit_delay: float = _s(
        0.001, "seconds a write waits for others to share its commit while writes flow (0: none)"
    )
    min_password: int = _s(8, "shortest password, in code points")
    max_password: int = _s(1_024, "longest password, in code points")
    login_fail_account_max: int = _s(
        5, "failed logins per account from one address per window before backoff"
    )
    login_fail_account_window: float = _s(900.0, "window for the per-account login limit")
    login_fail_address_max: int = _s(30, "failed logins per client address per window")
    login_fail_address_window: float = _s(600.0, "window for the per-address login limit")
    argon2_time_cost: int = _s(2, "argon2id iterations (OWASP minimum: 2)")
    argon2_memory_kib: int = _s(19_456, "argon2id memory in KiB (OWASP minimum: 19456)")
    argon2_parallelism: int = _s(1, "argon2id lanes")
    hash_workers: int = _s(2, "threads that hash passwords, off the event loop")
    shutdown_grace: float = _s(4.0, "seconds to finish in-flight work at SIGTERM/SIGINT")
    tls: bool = _s(False, "speak TLS on the port (self-signed certificate in the data dir)")
    tls_cert: str = _s("", "certificate chain (PEM) to use instead of the self-signed one")
    tls_key: str = _s("", "private key (PEM) of tls_cert")
    tls_handshake_timeout: float = _s(10.0, "seconds a client may take for the TLS handshake")
    announce: bool = _s(True, "announce the server on the LAN (DNS-SD/mDNS _chinwag._tcp)")
    registration: str = _s("open", "who may register an account: open, invite or closed")
    log_level: str = _s(
        "info", "server log level: debug (adds a line per connection event), info, warning or error"
    )
    # -- accounts: login and registration throttles, the hashing queue, nicks (acct) --
    login_fail_account_global_max: int = _s(
        100, "failed logins per account from all addresses per login_fail_account_window"
    )
    hash_queue_max: int = _s(
        64, "password hashes waiting for a hash_workers thread before rate_limited at once"
    )
    register_address_max: int = _s(10, "registrations per client address per register_window")
    register_global_max: int = _s(200, "registrations from all addresses per register_window")
    register_window: float = _s(600.0, "window for the registration limits")
    reserved_nicks: str = _s(
        "server,admin,root,chinwag,nickserv,chanserv,operator,system",
        "comma-separated nicks nobody may use or register (nor look-alikes)",
    )
    # The operator's control socket (DATA/control.sock, server/control.py).
    control_max_conns: int = _s(4, "control-socket (chinwag admin) connections served at once")
    control_timeout: float = _s(10.0, "seconds a control-socket connection may take to ask")
    # -- backlog paging (issue 10) --
    backlog_page: int = _s(100, "backlog messages read from the store at a time (at least 1)")
    backlog_held_limit: int = _s(
        50_000, "live frames held for a login while its backlog is sent; one more closes it"
    )
    # Safe to expose (issue 10): TLS handshakes and running out of descriptors.
    tls_handshakes_max: int = _s(256, "TLS handshakes in progress at once, whole server")
    tls_handshakes_per_address: int = _s(16, "TLS handshakes in progress at once from one address")
    accept_pause: float = _s(1.0, "seconds the server stops accepting when out of descriptors")
    # -- command budget, typing, room caps and reply bounds (issue 10, item 5) --
    account_budget: float = _s(
        2.0, "sessions' worth of command budget that all sessions of one account share"
    )
    typing_interval: float = _s(
        3.0, "seconds between two typing notices forwarded from one sender to one room or person"
    )
    max_rooms_per_guest: int = _s(20, "rooms a guest may be in, the lobby included")
    max_rooms_per_account: int = _s(100, "rooms an account may be in, the lobby included")
    max_rooms: int = _s(10_000, "rooms with someone online; a join that would add one is refused")
    who_reply_max: int = _s(500, "most people listed in one who reply")
    rooms_reply_max: int = _s(200, "most rooms listed in one rooms reply (the busiest)")
    # -- durability and the dedupe purge (issue 18) --
    durability: str = _s(
        "fsync",
        "fsync: an ack waits for the disk and survives power loss; os: it survives a server"
        " crash or kill -9, not a power cut (faster acks; see performance.md)",
    )
    dedupe_purge_batch: int = _s(
        500, "most expired dedupe rows (older than cid_ttl) deleted in one step (at least 1)"
    )
    dedupe_purge_interval: float = _s(
        60.0, "seconds between dedupe purge steps while no step finds a full batch (above 0)"
    )

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


class SettingsError(ValueError):
    """A setting name or value that cannot be used; the message says which and why."""


def describe() -> list[tuple[str, str, Any, str]]:
    """(name, type, default, description) for every setting, in declaration order."""
    out = []
    for f in fields(Settings):
        out.append((f.name, str(f.type), f.default, f.metadata.get("doc", "")))
    return out


_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


_CHOICES: dict[str, tuple[str, ...]] = {
    "registration": ("open", "invite", "closed"),
    "log_level": ("debug", "info", "warning", "error"),
    "durability": ("fsync", "os"),
}
_BOOLS: dict[str, bool] = {"true": True, "yes": True, "on": True, "1": True}
_BOOLS |= {"false": False, "no": False, "off": False, "0": False}


def _article(kind: str) -> str:
    """``an int``, ``a float``: the kind with its article."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def _coerce(name: str, kind: str, value: Any) -> Any:
    target = _TYPES[kind]
    if target is bool and isinstance(value, str) and value.strip().lower() in _BOOLS:
        value = _BOOLS[value.strip().lower()]
    if name in _CHOICES and value not in _CHOICES[name]:
        raise SettingsError(f"setting {name} is one of {', '.join(_CHOICES[name])}, not {value!r}")
    if isinstance(value, str) and target is not str:
        try:
            value = float(value) if target is float else int(value.replace("_", ""))
        except ValueError:
            raise SettingsError(f"setting {name} needs {_article(kind)}, not {value!r}") from None
    if target is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, target) or isinstance(value, bool) != (target is bool):
        raise SettingsError(f"setting {name} needs {_article(kind)}, not {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise SettingsError(f"setting {name} cannot be negative")
    return value


def build(
    config_file: Path | None = None,
    overrides: list[str] | None = None,
    **direct: Any,
) -> Settings:
    """Build settings from defaults, a TOML file, ``NAME=VALUE`` strings and keywords.

    Raises:
        SettingsError: an unknown name or a value of the wrong type.
    """
    kinds = {f.name: str(f.type) for f in fields(Settings)}
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            raw = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config file {config_file}: {exc}") from None
        section = raw.get("server", raw)
        values.update(section)
    for item in overrides or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise SettingsError(f"--set takes NAME=VALUE, not {item!r}")
        values[name.strip()] = value.strip()
    values.update({k: v for k, v in direct.items() if v is not None})
    clean = {}
    for name, value in values.items():
        if name not in kinds:
            raise SettingsError(
                f"unknown setting {name!r}; 'chinwag serve --print-settings' lists them"
            )
        clean[name] = _coerce(name, kinds[name], value)
    if clean.get("dedupe_purge_batch", 1) < 1:
        raise SettingsError("setting dedupe_purge_batch must be at least 1, not 0")
    if clean.get("dedupe_purge_interval", 1.0) <= 0:
        raise SettingsError("setting dedupe_purge_interval must be above 0 seconds")
    if not str(clean.get("server_name", "")).strip():
        clean["server_name"] = socket.gethostname().split(".")[0] or "chinwag"
    settings = Settings(**clean)
    from chinwag.core.accounts import ReservedNicks  # it needs Settings: imported late

    try:
        ReservedNicks(settings.reserved_nicks)
    except ValueError as exc:
        raise SettingsError(f"setting {exc}") from None
    return settings
