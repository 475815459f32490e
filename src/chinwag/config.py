"""Server settings: every limit named, with its default and a one-line description.

Settings come from defaults, then a TOML file (``--config``), then ``--set NAME=VALUE``
on the command line. ``chinwag serve --print-settings`` lists them all, and
``docs/configuration.md`` is the same table.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal


def _s(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True, slots=True)
class Settings:
    """Frozen server configuration. Times are in seconds, sizes in bytes."""

    host: str = _s("0.0.0.0", "address to listen on")
    port: int = _s(5050, "TCP port to listen on")
    listen: tuple[str, ...] = _s(
        (), "listeners, e.g. tcp://0.0.0.0:5050 and tls://[::]:5051 (empty: host, port and tls)"
    )
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
    # -- operations (issue 17): the log's format --
    log_format: str = _s(
        "text", "server log format: text, or json (one JSON object per line, for journald)"
    )
    # -- durability and the dedupe purge (issue 18) --
    durability: str = _s(
        "fsync",
        "fsync: an ack waits for the disk and survives power loss; os: it survives a server"
        " crash or kill -9, not a power cut (faster acks; see performance.md)",
    )
    dedupe_purge_batch: int = _s(
        500,
        "PostgreSQL: most expired dedupe rows (older than cid_ttl) deleted in one step"
        " (at least 1; SQLite keeps a cid on its message: nothing to purge)",
    )
    dedupe_purge_interval: float = _s(
        60.0, "seconds between purge steps while no step finds a full batch (above 0)"
    )
    # -- the web client and WebSocket endpoint (issue 14) --
    http_port: int = _s(
        8080, "port of the web client and /ws on host, with TLS when tls is on (0: none)"
    )
    ws_origins: str = _s(
        "", "comma-separated extra Origins allowed on /ws, e.g. https://chat.example.org"
    )
    http_conns_per_address: int = _s(
        64, "open connections to the web port from one client address (HTTP and /ws)"
    )
    # -- IRC listener (issue 19): irc:// and ircs:// listeners, --irc-port --
    irc_port: int = _s(-1, "IRC port beside the others, on host (-1: off; 0: any free port)")
    irc_tls_port: int = _s(-1, "IRC-over-TLS port, on host; needs tls or a tls:// listener")
    irc_hard_line_limit: int = _s(
        16_384,
        "bytes of one IRC line beyond which the connection is closed (a line over 512"
        " bytes + 4096 of tags gets 417 and is skipped); at least 4608",
    )
    # -- several nodes (issue 13): PostgreSQL as the truth --
    store: str = _s(
        "sqlite",
        "where the data lives: sqlite (a file in the data directory) or a postgresql:// URL"
        " (several nodes share one); put its password in PGPASSWORD or ~/.pgpass, not here",
    )
    bus: str = _s(
        "local",
        "how nodes hear of each other's messages: local (one node) or a redis:// URL"
        " (every node of one store uses the same)",
    )
    bus_stream_max: int = _s(
        100_000,
        "entries the Redis stream between nodes keeps; a node further behind reads the database",
    )
    store_timeout: float = _s(
        30.0, "seconds one PostgreSQL statement may take before its write fails with server_error"
    )
    # -- the web listener, safe to expose (issue 14 follow-up) --
    http_request_timeout: float = _s(
        10.0,
        "seconds from accept (or a request's first byte) until an HTTP request's headers are"
        " read, and for an unread body after the answer; then closed (above 0)",
    )
    http_conns_max: int = _s(
        1024, "open connections to the web port, whole server (HTTP and /ws; at least 1)"
    )
    # -- monitoring (issue 17): /healthz, /readyz, /metrics --
    ready_timeout: float = _s(
        2.0, "seconds /readyz waits for the store to commit an empty write before it says 503"
    )
    metrics_port: int = _s(
        -1,
        "port of /metrics, /healthz and /readyz when there is no HTTP listener: on 127.0.0.1"
        " (on host with metrics_public); -1: off, 0: any free port",
    )
    metrics_public: bool = _s(
        False, "answer /metrics to any client address, not only loopback (else 403)"
    )
    # -- messages people expect (issue 15, protocol §8) --
    edit_window: float = _s(86_400.0, "seconds after sending during which a message may be edited")
    mention_limit: int = _s(20, "most distinct @nicks of one message looked up as mentions")
    search_max: int = _s(100, "most messages in one search reply (a larger limit is clamped)")
    search_max_words: int = _s(16, "most words in one search query (more: bad_request)")
    # -- blocks (issue 16) --
    blocks_max: int = _s(
        1000,
        "most nicks one account (or guest session) may block (more: forbidden too_many_blocks)",
    )
    # -- moderation (issue 16) --
    topic_max: int = _s(300, "most characters of a room topic (longer: bad_request)")
    moderation_reason_max: int = _s(
        300, "most characters of the reason of a kick, ban or mute (longer: bad_request)"
    )
    room_standings_max: int = _s(
        1000,
        "most bans, mutes, invites and mods one room keeps (more: forbidden; lift some first)",
    )
    audit_page: int = _s(10_000, "most entries 'chinwag admin audit' prints at once")
    # -- several nodes, what is left (issue 13) --
    node_heartbeat: float = _s(
        10.0,
        "seconds between a node's 'alive' on the bus; a node silent for three of them counts"
        " as gone, its users offline (above 0)",
    )
    # -- IRC completion (issue 19) --
    irc_multiline_max_lines: int = _s(
        100, "most lines of one IRC draft/multiline batch (more: FAIL BATCH MULTILINE_MAX_LINES)"
    )
    irc_multiline_max_bytes: int = _s(
        16_000,
        "most bytes of text in one IRC draft/multiline batch, newlines included"
        " (more: FAIL BATCH MULTILINE_MAX_BYTES)",
    )
    # -- retention (issue 17): old messages deleted for good, in the background --
    room_retention_days: float = _s(
        0.0, "days a room message is kept, then deleted for good with its edits (0: forever)"
    )
    dm_retention_days: float = _s(
        0.0, "days a direct message is kept, then deleted for good with its edits (0: forever)"
    )
    room_retention: str = _s(
        "",
        "rooms kept otherwise than room_retention_days, e.g. lobby=7,archive=0 (days; 0: forever)",
    )
    retention_batch: int = _s(
        500,
        "most expired messages deleted in one purge step (at least 1; see dedupe_purge_interval)",
    )

    # -- readiness (issue 17): /readyz checks the bus and the fan-out lag too --
    ready_lag_max: float = _s(
        5.0,
        "seconds a message committed here may wait for its fan-out before /readyz says 503"
        " (above 0)",
    )

    # -- checkpoints off the writer's path (issue 18) --
    checkpoint_wal_bytes: int = _s(
        67_108_864,
        "with durability 'os': bytes of write-ahead log not yet copied into the database beyond"
        " which a checkpoint runs at once (else when writes pause); bounds the WAL (0: SQLite's"
        " own, in commits, as with 'fsync' always)",
    )
    # -- IRC registration and server queries (issue 19, ircreg) --
    whowas_history: int = _s(
        100,
        "people who went offline that whowas (IRC WHOWAS) remembers, newest first; kept in"
        " memory on each node, forgotten at restart (0: none)",
    )

    # -- bounded reactions (adversarial audit, audit4) --
    reactions_per_person_max: int = _s(
        20,
        "most different reactions one person has on one message at once (more: forbidden 'limit')",
    )
    reactions_per_message_max: int = _s(
        1000,
        "most reactions (of anyone) on one message at once (more: forbidden 'limit'); bounds"
        " every history, search and backlog frame that carries the message",
    )

    # -- the metrics switch (issue 17, bench15) --
    metrics: bool = _s(
        True,
        "count messages, deliveries and latencies for /metrics; false: nothing is counted"
        " and /metrics answers 404 (/healthz and /readyz stay)",
    )

    # -- away (issue 19, irchist) --
    away_max_length: int = _s(
        300,
        "most characters of an away message (JSON 'away', IRC AWAY; longer: refused with"
        " bad_request, nothing changes; at least 1)",
    )

    # -- room retention and the bus's reconnection (issue 17, ops3) --
    room_retention_max_days: int = _s(
        3650,
        "most days a room's owner may set as the room's own retention (retention_days; at least 1)",
    )
    bus_retry_max: float = _s(
        5.0,
        "most seconds between two attempts to reach Redis again (several nodes); the first"
        " waits 0.1 s, each next one twice as long (at least 0.1)",
    )
    # -- IRC channels and moderation (issue 19, ircchan) --
    irc_auto_join: bool = _s(
        True,
        "IRC clients start in #lobby, as every chinwag client does (false: an IRC client is in"
        " only the channels it JOINs; an account keeps the rooms it is in)",
    )
    # -- the web listener's host names: DNS rebinding (audit4, rebind) --
    web_hosts: str = _s(
        "",
        "comma-separated host names the web listener answers to besides IP addresses, localhost,"
        " this machine's names and the listeners' and ws_origins' (.example.org: it and its"
        " subdomains; *: any name, no check); other names get 421",
    )
    web_hosts_logged_max: int = _s(
        100, "host names refused by the web listener that are logged, each once (then: none)"
    )
    # -- rooms made, and empty rooms forgotten (issue 16 follow-up, rooms4) --
    rooms_made_max: int = _s(
        20,
        "new rooms (names nobody had) one account or guest session may make per"
        " rooms_made_window, counted on each node (more: forbidden 'rooms_made'; at least 1)",
    )
    rooms_made_window: float = _s(
        3600.0, "seconds over which rooms_made_max counts the rooms one made (above 0)"
    )
    # ircoper
    wallops_max_length: int = _s(
        400, "longest wallops (an admin's line to everyone listening), in characters (at least 1)"
    )
    # irccaps
    monitor_max: int = _s(
        100,
        "most nicks one session may monitor (IRC MONITOR, JSON monitor): told when each comes"
        " online or goes offline (more: bad_request 'monitor_max', nothing added; at least 1)",
    )
    real_name_max: int = _s(
        200,
        "most characters of a real name set by IRC SETNAME or JSON setname (longer:"
        " bad_request, nothing changed; at least 1)",
    )
    # ircmodes: a room's key (IRC +k) and member limit (IRC +l)
    room_key_max: int = _s(
        23,
        "most bytes of a room's key (JSON room 'key', IRC MODE +k; longer: refused, nothing"
        " changes; 1 to 300)",
    )
    room_limit_max: int = _s(
        100_000,
        "highest member limit a room's owner or mods may set (JSON room 'limit', IRC MODE +l;"
        " higher: refused, nothing changes; at least 1)",
    )
    # -- notices, nick changes, reactions, multiline, read markers (issue 19, ircmsg) --
    reaction_max_length: int = _s(
        32,
        "most code points of a reaction: one emoji or symbol, or a short text without"
        " spaces or control characters (at least 8, the longest emoji sequence's room)",
    )

    def room_retentions(self) -> dict[str, float | None]:
        """``room_retention`` by room: days, or None for forever (checked by `build`)."""
        return parse_room_retention(self.room_retention)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def listeners(self) -> tuple[ListenSpec, ...]:
        """Where the server listens: ``listen``, or else the one listener of host/port/tls.

        That one listener speaks TLS when ``tls`` is on or a certificate
        (``tls_cert``/``tls_key``) is given, as before ``listen`` existed.
        """
        if self.listen:
            return tuple(ListenSpec.parse(text) for text in self.listen) + self.irc_listeners()
        tls = self.tls or bool(self.tls_cert or self.tls_key)
        return (ListenSpec("chinwag", tls, self.host, self.port), *self.irc_listeners())

    def irc_listeners(self) -> tuple[ListenSpec, ...]:
        """The IRC listeners of ``irc_port`` and ``irc_tls_port`` (on ``host``), if set."""
        ports = ((False, self.irc_port), (True, self.irc_tls_port))
        return tuple(ListenSpec("irc", tls, self.host, port) for tls, port in ports if port >= 0)


# What a listener speaks, by the scheme of its spec: (protocol, over TLS).
# New transports add schemes here (http/https, irc/ircs) without changing the format.
Wire = Literal["chinwag", "http", "irc"]
SCHEMES: dict[str, tuple[Wire, bool]] = {
    "tcp": ("chinwag", False),
    "tls": ("chinwag", True),
    "http": ("http", False),  # the web client at / and the protocol over WebSocket at /ws
    "https": ("http", True),
    "irc": ("irc", False),
    "ircs": ("irc", True),
}
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_EXAMPLE = "tcp://0.0.0.0:5050, tls://[::]:5051 or tcp://127.0.0.1:5050"


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """One listener: what it speaks (``protocol``, ``tls``) and where (``host``, ``port``).

    Written ``SCHEME://HOST:PORT``: ``tcp://`` is chinwag's JSON lines in the
    clear, ``tls://`` the same inside TLS; ``http://`` (``https://``: with TLS)
    serves the web client and the protocol over WebSocket at ``/ws``. HOST is
    an IPv4 address, a host name, an IPv6 address in brackets (``[::1]``) or
    nothing (every address, IPv4 and IPv6); PORT is 0 to 65535 (0: any free port).
    """

    protocol: Wire
    tls: bool
    host: str
    port: int

    @property
    def scheme(self) -> str:
        return next(k for k, v in SCHEMES.items() if v == (self.protocol, self.tls))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> ListenSpec:
        """The spec ``text`` names.

        Raises:
            SettingsError: ``text`` is not a spec; the message says what to write.
        """

        def bad(why: str) -> SettingsError:
            return SettingsError(f"listener {text!r} {why}; write e.g. {_EXAMPLE}")

        scheme, sep, rest = text.strip().partition("://")
        if not sep:
            raise bad("does not start with its kind (tcp://, tls://, http:// or https://)")
        if scheme.lower() not in SCHEMES:
            kinds = ", ".join(f"{k}://" for k in SCHEMES)
            raise bad(f"has an unknown kind {scheme!r}:// (known: {kinds})")
        protocol, tls = SCHEMES[scheme.lower()]
        if rest.startswith("["):
            host, closed, port_part = rest[1:].partition("]")
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise bad(f"has {host!r} in brackets, which is not an IPv6 address") from None
            if not closed:
                raise bad("opens a bracket it does not close")
            if not port_part.startswith(":"):
                raise bad("has no :PORT after the address")
            port_text = port_part[1:]
        else:
            host, colon, port_text = rest.rpartition(":")
            if not colon:
                raise bad("has no :PORT")
            if ":" in host:
                raise bad("has an IPv6 address without brackets (write [::1], not ::1)")
            if host and not _HOST_NAME.fullmatch(host):
                raise bad(f"has {host!r}, which is neither an address nor a host name")
        if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65_535:
            raise bad(f"has the port {port_text!r}: a port is a number from 0 to 65535")
        return cls(protocol, tls, host, int(port_text))


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
    "log_format": ("text", "json"),
    "durability": ("fsync", "os"),
}
_BOOLS: dict[str, bool] = {"true": True, "yes": True, "on": True, "1": True}
_BOOLS |= {"false": False, "no": False, "off": False, "0": False}


def _article(kind: str) -> str:
    """``an int``, ``a float``: the kind with its article."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def _specs(value: Any) -> tuple[str, ...]:
    """The ``listen`` setting: a list of specs (TOML), or specs split by commas (``--set``)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise SettingsError(f"setting listen is a list of strings like {_EXAMPLE}, not {value!r}")
    specs = [ListenSpec.parse(item) for item in items if item.strip()]
    for i, spec in enumerate(specs):
        if spec in specs[:i]:
            raise SettingsError(f"listener {str(spec)!r} is listed twice; list each one once")
    return tuple(str(spec) for spec in specs)


def _coerce(name: str, kind: str, value: Any) -> Any:
    if name == "listen":
        return _specs(value)
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


def _check_listen(clean: dict[str, Any]) -> None:
    """``listen`` replaces host/port/tls: refuse them beside it, and a certificate unused."""
    beside = [name for name in ("host", "port", "tls", "http_port") if name in clean]
    if beside:
        flags = ", ".join(f"{name} (--{name.replace('_', '-')})" for name in beside)
        tls, host, port = (
            clean.get("tls", False),
            clean.get("host", "0.0.0.0"),
            clean.get("port", 5050),
        )
        raise SettingsError(
            f"setting listen (--listen) replaces host, port, tls and http_port: drop {flags}"
            f" and put every listener in listen, e.g. {ListenSpec('chinwag', tls, host, port)}"
            " (and http://HOST:PORT for the web client)"
        )
    has_tls = any(ListenSpec.parse(text).tls for text in clean["listen"])
    if not has_tls and (clean.get("tls_cert") or clean.get("tls_key")):
        raise SettingsError(
            "a certificate (tls_cert, tls_key; --cert, --key) is given but no listener "
            "speaks TLS: add a tls://HOST:PORT listener or drop the certificate"
        )


def _check_irc(clean: dict[str, Any]) -> None:
    """The IRC settings: a TLS port only beside TLS, a hard limit above IRC's own limits."""
    limit = clean.get("irc_hard_line_limit", 16_384)
    if limit < 4608:  # 512 bytes + 4096 bytes of tags (protocol/irc.py)
        raise SettingsError(
            f"setting irc_hard_line_limit is {limit}; it must be at least 4608 (an IRC line"
            " of 512 bytes plus 4096 bytes of tags)"
        )
    if clean.get("irc_tls_port", -1) >= 0 and not (clean.get("tls") or clean.get("listen")):
        raise SettingsError(
            "setting irc_tls_port (--irc-tls-port) needs TLS: add --tls, or use --irc-port"
        )
    for name in ("irc_multiline_max_lines", "irc_multiline_max_bytes"):
        if clean.get(name, 1) < 1:
            raise SettingsError(f"setting {name} must be at least 1 (a batch of one line)")


def _check_store(clean: dict[str, Any]) -> None:
    if clean.get("bus_stream_max", 1) < 1:
        raise SettingsError("setting bus_stream_max must be at least 1 (100000 is the default)")
    if clean.get("store_timeout", 1) <= 0:
        raise SettingsError("setting store_timeout must be above 0 seconds (30 is the default)")
    if clean.get("node_heartbeat", 1) <= 0:
        raise SettingsError("setting node_heartbeat must be above 0 seconds (10 is the default)")
    bus = str(clean.get("bus", "local"))
    if bus != "local" and not bus.startswith(("redis://", "rediss://")):
        raise SettingsError(
            "setting bus (--bus) is local or a redis://HOST:PORT/DB URL,"
            f" not {bus.split('@')[-1]!r}"
        )
    if re.match(r"^[a-z]+://[^/@]*:[^/@]*@", bus):
        raise SettingsError(
            "setting bus (--bus) holds a password, which would show in the process list and in"
            " --print-settings: a Redis password is not there yet; keep Redis on a private"
            " network instead"
        )
    store = str(clean.get("store", "sqlite"))
    if store != "sqlite" and not store.startswith(("postgresql://", "postgres://")):
        raise SettingsError(
            f"setting store (--store) is sqlite or a postgresql://USER@HOST:PORT/DATABASE URL,"
            f" not {store.split('@')[-1]!r}"
        )
    if re.match(r"^[a-z]+://[^/@]*:[^/@]*@", store):
        raise SettingsError(
            "setting store (--store) holds a password, which would show in the process list"
            " and in --print-settings: drop it from the URL and put it in PGPASSWORD or"
            " ~/.pgpass instead"
        )


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
    if clean.get("listen"):
        _check_listen(clean)
    if clean.get("dedupe_purge_batch", 1) < 1:
        raise SettingsError("setting dedupe_purge_batch must be at least 1, not 0")
    if clean.get("dedupe_purge_interval", 1.0) <= 0:
        raise SettingsError("setting dedupe_purge_interval must be above 0 seconds")
    _check_store(clean)
    _check_web(clean)
    if not str(clean.get("server_name", "")).strip():
        clean["server_name"] = socket.gethostname().split(".")[0] or "chinwag"
    _check_irc(clean)
    _check_retention(clean)
    parse_web_hosts(str(clean.get("web_hosts", "")))
    if clean.get("away_max_length", 1) < 1:
        raise SettingsError("setting away_max_length must be at least 1 (300 is the default)")
    _check_ops3(clean)
    if clean.get("wallops_max_length", 1) < 1:  # ircoper
        raise SettingsError("setting wallops_max_length must be at least 1 (400 is the default)")
    if clean.get("monitor_max", 1) < 1:  # irccaps
        raise SettingsError("setting monitor_max must be at least 1 (100 is the default)")
    if clean.get("real_name_max", 1) < 1:
        raise SettingsError("setting real_name_max must be at least 1 (200 is the default)")
    _check_ircmodes(clean)
    settings = Settings(**clean)
    from chinwag.core.accounts import ReservedNicks  # it needs Settings: imported late

    try:
        ReservedNicks(settings.reserved_nicks)
    except ValueError as exc:
        raise SettingsError(f"setting {exc}") from None
    return settings


def _check_web(clean: dict[str, Any]) -> None:
    """The web listener's deadline and server-wide cap."""
    if clean.get("http_request_timeout", 1) <= 0:
        raise SettingsError(
            "setting http_request_timeout must be above 0 seconds (10 is the default)"
        )
    if clean.get("metrics_port", -1) > 65_535:
        raise SettingsError(
            "setting metrics_port must be a port from 0 to 65535 (leave it out to keep it off)"
        )
    if clean.get("ready_timeout", 1) <= 0:
        raise SettingsError("setting ready_timeout must be above 0 seconds (2 is the default)")
    if clean.get("http_conns_max", 1) < 1:
        raise SettingsError(
            "setting http_conns_max must be at least 1 (1024 is the default; http_port=0"
            " turns the web client off)"
        )


def _check_ops3(clean: dict[str, Any]) -> None:
    """A room's own retention bound and the bus's reconnection backoff (issue 17)."""
    if clean.get("room_retention_max_days", 1) < 1:
        raise SettingsError(
            "setting room_retention_max_days must be at least 1 day (3650 is the default)"
        )
    if clean.get("bus_retry_max", 0.1) < 0.1:
        raise SettingsError(
            "setting bus_retry_max must be at least 0.1 seconds, the first retry's wait"
            " (5 is the default)"
        )


def parse_room_retention(text: str) -> dict[str, float | None]:
    """``ROOM=DAYS,…`` (the ``room_retention`` setting) by room; 0 days is None (forever).

    Raises:
        SettingsError: an entry that is not a room name, ``=`` and a number of
            days, or a room listed twice.
    """
    from chinwag.core.rules import parse_room  # the room rules live in core
    from chinwag.errors import BadRoom

    out: dict[str, float | None] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        raw_room, _, raw_days = entry.partition("=")
        try:
            room = parse_room(raw_room.strip())
            days = float(raw_days)
        except (ValueError, BadRoom):
            days = -1.0
        if not 0 <= days < float("inf"):
            raise SettingsError(
                f"setting room_retention has {entry.strip()!r}: write ROOM=DAYS entries"
                " separated by commas, e.g. lobby=7,archive=0 (0 keeps a room forever)"
            )
        if room in out:
            raise SettingsError(f"setting room_retention lists the room {room!r} twice")
        out[room] = days or None
    return out


def _check_retention(clean: dict[str, Any]) -> None:
    if clean.get("rooms_made_max", 1) < 1:  # rooms4
        raise SettingsError("setting rooms_made_max must be at least 1 (20 is the default)")
    if clean.get("rooms_made_window", 1) <= 0:
        raise SettingsError(
            "setting rooms_made_window must be above 0 seconds (3600 is the default)"
        )
    if clean.get("ready_lag_max", 1) <= 0:
        raise SettingsError("setting ready_lag_max must be above 0 seconds (5 is the default)")
    if clean.get("retention_batch", 1) < 1:
        raise SettingsError("setting retention_batch must be at least 1 (500 is the default)")
    if clean.get("reaction_max_length", 8) < 8:  # ircmsg
        raise SettingsError("setting reaction_max_length must be at least 8 (32 is the default)")
    parse_room_retention(str(clean.get("room_retention", "")))


def _check_ircmodes(clean: dict[str, Any]) -> None:
    if not 1 <= clean.get("room_key_max", 1) <= 300:
        raise SettingsError("setting room_key_max must be 1 to 300 bytes (23 is the default)")
    if clean.get("room_limit_max", 1) < 1:
        raise SettingsError("setting room_limit_max must be at least 1 (100000 is the default)")


_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def parse_web_hosts(text: str) -> tuple[str, ...]:
    """``web_hosts``: its names, lower case, without a trailing dot (``.NAME``, ``*`` kept).

    Raises:
        SettingsError: an entry that is not a host name, ``.`` and a domain, or ``*``
            (a URL, a port, a ``*.`` pattern): the message says what to write.
    """
    out: list[str] = []
    for entry in text.split(","):
        name = entry.strip().lower()
        if not name:
            continue
        bare = name.removeprefix(".").removesuffix(".")
        if name != "*" and not _NAME.fullmatch(bare) and not is_address(bare):
            raise SettingsError(
                f"setting web_hosts has {entry.strip()!r}: list host names only, separated by"
                " commas, without scheme, port or path, e.g. chat.example.org,.example.net"
                " (.example.net: that domain and its subdomains; * for any name; an"
                " international name in its xn-- form)"
            )
        out.append(name if name == "*" else ("." if name.startswith(".") else "") + bare)
    return tuple(out)


def is_address(text: str) -> bool:
    """Whether ``text`` is an IP address (v4, or v6 without brackets)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
