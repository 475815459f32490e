"""The ``chinwag`` command: argument parsing, then hand-off."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path

from chinwag import __version__
from chinwag.config import Settings, SettingsError, build, describe


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run a chinwag server")
    p.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="TCP port (default 5050; 0 picks a free one)")
    p.add_argument(
        "--listen",
        action="append",
        metavar="SPEC",
        help="listen on SPEC instead of --host/--port/--tls (repeatable): tcp://HOST:PORT "
        "(plain) or tls://HOST:PORT, an IPv6 HOST in brackets, e.g. tls://[::]:5051",
    )
    p.add_argument(
        "--http-port",
        type=int,
        help="port of the web client and /ws (default 8080; 0: none); HTTPS with --tls",
    )
    p.add_argument(
        "--irc-port",
        type=int,
        metavar="PORT",
        help="also speak IRC on PORT, e.g. 6667 (off unless set); see docs/irc.md",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="/metrics, /healthz and /readyz on 127.0.0.1:PORT when there is no HTTP listener",
    )
    p.add_argument(
        "--irc-tls-port",
        type=int,
        metavar="PORT",
        help="also speak IRC over TLS, e.g. 6697 (with --tls)",
    )
    p.add_argument("--data", type=Path, help="data directory (default: platform user-data dir)")
    p.add_argument("--config", type=Path, help="TOML file of settings")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change one setting (repeatable); see --print-settings",
    )
    p.add_argument(
        "--tls",
        action="store_const",
        const=True,
        help="speak TLS (a self-signed certificate is made in the data dir on first start)",
    )
    p.add_argument("--cert", help="TLS certificate chain (PEM) instead of the self-signed one")
    p.add_argument("--key", help="private key (PEM) of --cert")
    p.add_argument(
        "--no-announce",
        dest="announce",
        action="store_const",
        const=False,
        help="do not announce the server on the LAN (mDNS)",
    )
    p.add_argument(
        "--registration",
        choices=("open", "invite", "closed"),
        help="who may register: anyone (default), holders of an invite, nobody",
    )
    p.add_argument(
        "--name", help="the server's name in welcome and on the LAN (default: the host name)"
    )
    p.add_argument("--print-settings", action="store_true", help="list every setting and exit")
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines as text (default) or one JSON object per line (for journald)",
    )
    p.add_argument(
        "--with-gamebot",
        action="store_true",
        help="also run the game bot, with its data in DATA/bots/gamebot",
    )
    p.add_argument(
        "--store",
        metavar="URL",
        help="sqlite (default) or postgresql://USER@HOST:PORT/DB, shared by several nodes",
    )
    p.add_argument(
        "--bus",
        metavar="URL",
        help="local (default) or redis://HOST:PORT/DB, through which several nodes hear each other",
    )


def _chat_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("chat", help="the terminal client")
    p.add_argument(
        "server",
        nargs="?",
        help="HOST[:PORT], a chinwag:// invite link or an invite code; "
        "none: pick a server found on the LAN",
    )
    p.add_argument("--nick", required=True, help="your nick")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--tls", action="store_true", help="use TLS (pinning the server's certificate)")
    p.add_argument(
        "--ca",
        metavar="FILE",
        help="use TLS and verify the certificate against the CA certificates in FILE "
        "('system': the system's trust store) instead of pinning",
    )
    p.add_argument(
        "--trust",
        action="store_true",
        help="pin an unknown server's certificate without asking (for scripts)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds to look for servers on the LAN (default 2)",
    )


def _gui_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("gui", help="the desktop app (tkinter)")
    p.add_argument(
        "server", nargs="?", help="HOST[:PORT] or an invite to fill in (default: the last one)"
    )
    p.add_argument("--nick", help="the nick to fill in (default: the last one)")
    p.add_argument("--theme", choices=["light", "dark"], help="default: the last one used")
    p.add_argument("--scale", type=float, help="1.5 for 150 %% (default: from the screen)")


def _servers_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("servers", help="list the chinwag servers announced on the LAN")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--timeout", type=float, default=2.0, metavar="S", help="seconds to listen (default 2)"
    )
    p.add_argument(
        "--interface",
        action="append",
        default=[],
        metavar="ADDR",
        help="ask only on the interface with this IPv4 address (repeatable; default: all)",
    )


def _invite_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("invite", help="make an invite (link and code) for a server")
    p.add_argument("--data", type=Path, help="the server's data directory (default: platform's)")
    p.add_argument("--uses", type=int, default=1, help="accounts it may register (default 1)")
    p.add_argument("--expires", default="24h", help="e.g. 30m, 24h, 7d, or never (default 24h)")
    p.add_argument("--host", help="address clients use (default: this machine's LAN address)")
    p.add_argument("--port", type=int, default=5050, help="the server's port (default 5050)")
    p.add_argument("--cert", type=Path, help="the server's certificate, if not self-signed")
    p.add_argument("--plain", action="store_true", help="the server does not speak TLS")
    p.add_argument(
        "--http-port",
        type=int,
        default=8080,
        help="the server's web client port, for the browser link (default 8080; 0: no link)",
    )
    p.add_argument(
        "--no-token",
        action="store_true",
        help="only the address and fingerprint: no sign-up token",
    )


def _admin_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("admin", help="manage accounts in a server's data directory")
    p.add_argument("--data", type=Path, help="data directory (default: platform user-data dir)")
    p.add_argument(
        "--config", type=Path, help="the server's TOML file (its rules apply when it is stopped)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the server, as with serve (used when no server runs)",
    )
    p.add_argument(
        "--store",
        metavar="URL",
        help="the nodes' postgresql://USER@HOST:PORT/DB (default: the data directory's SQLite"
        " file; the password goes in PGPASSWORD or ~/.pgpass)",
    )
    cmds = p.add_subparsers(dest="admin_cmd", required=True)
    cmds.add_parser("accounts", help="list accounts")
    reset = cmds.add_parser("reset-password", help="set a new password for an account")
    reset.add_argument("nick")
    reset.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    delete = cmds.add_parser("delete", help="delete an account (its nick stays reserved)")
    delete.add_argument("nick")
    cmds.add_parser("stats", help="counts of accounts, messages, rooms")
    health = cmds.add_parser(
        "health",
        help="ask the running server's /readyz: exit 0 ready, 1 not ready, 2 no answer",
    )
    health.add_argument(
        "--url",
        help="its /readyz (default: http://127.0.0.1:PORT/readyz, PORT its settings' http_port,"
        " or metrics_port when http_port is 0; https:// when tls is on)",
    )
    health.add_argument(
        "--fingerprint",
        help="for https://: the SHA-256 fingerprint of the server's certificate (default: the"
        " pin in known_hosts, else the certificate in the data directory, else the system CAs)",
    )
    backup = cmds.add_parser("backup", help="copy the database to FILE (the server may run)")
    backup.add_argument("file", type=Path, metavar="FILE", help="the backup to make (a new file)")
    restore = cmds.add_parser(
        "restore", help="replace the database with a backup (the server must be stopped)"
    )
    restore.add_argument("file", type=Path, metavar="FILE", help="a backup made by backup")
    restore.add_argument(
        "--verify",
        action="store_true",
        required=True,
        help="check integrity, schema version and counts first (required: restore never "
        "replaces the database with a file it has not checked)",
    )
    export = cmds.add_parser(
        "export", help="write what the server holds about one account (or one room) as JSON"
    )
    export.add_argument("nick", nargs="?", help="the account")
    export.add_argument("--room", help="a room's history instead of an account")
    export.add_argument("--out", type=Path, metavar="FILE", help="a new file (default: stdout)")
    # -- moderation (issue 16) --
    grant = cmds.add_parser(
        "grant", help="give an account a role: admin of the server, or mod of a room (--room)"
    )
    grant.add_argument("nick")
    grant.add_argument("role", choices=("admin", "mod", "member"), help="member takes it away")
    grant.add_argument("--room", help="a room's role (mod/member) instead of the server's")
    for name, what in (
        ("ban", "ban an account from the server (or from --room); its sessions end"),
        ("unban", "lift a ban from the server (or from --room)"),
        ("kick", "end an account's sessions (or take it out of --room)"),
    ):
        act = cmds.add_parser(name, help=what)
        act.add_argument("nick")
        act.add_argument("--room", help="in this room only")
        if name != "unban":
            act.add_argument("--reason", default="", help="why (kept in the audit log)")
        if name == "ban":
            act.add_argument(
                "--until",
                help="when it ends: a UTC time (2026-12-02T14:05) or a length (30m, 2h, 7d);"
                " default: until unban",
            )
    audit = cmds.add_parser("audit", help="the log of every moderation and admin action")
    audit.add_argument("--room", help="this room's entries only")
    audit.add_argument(
        "--since", help="from this UTC time (2026-12-02 or 2026-12-02T14:05) or this long ago (7d)"
    )


def _bot_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bot", help="run a bot")
    kinds = p.add_subparsers(dest="bot_kind", required=True)
    g = kinds.add_parser("games", help="the game bot: tic-tac-toe, connect four... by DM")
    g.add_argument(
        "server",
        nargs="?",
        default="localhost",
        help="HOST[:PORT] or an invite link or code (default localhost)",
    )
    g.add_argument("--nick", default="gamebot", help="its nick (default gamebot)")
    g.add_argument("--data", type=Path, help="its directory (default: user-data dir/bots/NICK)")
    g.add_argument(
        "--move-timeout",
        type=float,
        default=3 * 24 * 3600.0,
        metavar="SECONDS",
        help="between two people, a move not made in time forfeits (default 3 days)",
    )
    g.add_argument("--tls", action="store_true", help="use TLS (pinning the certificate)")
    g.add_argument("--ca", metavar="FILE", help="use TLS, verifying against FILE ('system')")
    g.add_argument("--trust", action="store_true", help="pin an unknown certificate without asking")
    g.add_argument("--seed", type=int, help=argparse.SUPPRESS)  # for tests
    g.add_argument("--stop-on-eof", action="store_true", help=argparse.SUPPRESS)  # serve


def _known_hosts_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("known-hosts", help="the TLS certificates this client has pinned")
    cmds = p.add_subparsers(dest="known_cmd", required=True)
    cmds.add_parser("list", help="every pinned server and its fingerprint")
    forget = cmds.add_parser("forget", help="forget a server's pin (to accept a new certificate)")
    forget.add_argument("server", metavar="HOST[:PORT]", help="the server (default port 5050)")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chinwag",
        description="chinwag: a self-hostable chat server, its clients and its game bot",
    )
    parser.add_argument("--version", action="version", version=f"chinwag {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _chat_parser(sub)
    _gui_parser(sub)
    _admin_parser(sub)
    _servers_parser(sub)
    _invite_parser(sub)
    _bot_parser(sub)
    _known_hosts_parser(sub)
    return parser


def print_settings(settings: Settings) -> None:
    for name, kind, default, doc in describe():
        current = getattr(settings, name)
        note = "" if current == default else f"   (default {default!r})"
        print(f"{name:28} {kind:6} {current!r:>14}  {doc}{note}")


def _data_dir(given: Path | None, settings: Settings | None = None) -> Path:
    from chinwag.server.app import default_data_dir

    if given is not None:
        return given
    if settings is not None and settings.data_dir:
        return Path(settings.data_dir)
    return default_data_dir()


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        settings = build(
            args.config,
            args.overrides,
            host=args.host,
            port=args.port,
            listen=args.listen,
            http_port=args.http_port,
            tls=args.tls,
            tls_cert=args.cert,
            tls_key=args.key,
            announce=args.announce,
            registration=args.registration,
            server_name=args.name,
            log_format=args.log_format,
            irc_port=args.irc_port,
            irc_tls_port=args.irc_tls_port,
            metrics_port=args.metrics_port,
            store=args.store,
            bus=args.bus,
        )
    except SettingsError as exc:
        print(f"chinwag serve: {exc}", file=sys.stderr)
        return 2
    if args.print_settings:
        print_settings(settings)
        return 0
    from chinwag.server.logs import configure

    configure(settings.log_level, settings.log_format, sys.stderr)  # both checked by build()
    from chinwag.server.app import serve

    try:
        import uvloop  # type: ignore[import-not-found]

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    data_dir = _data_dir(args.data, settings)
    from chinwag.net.serving import server_extras
    from chinwag.net.tls import TlsSetupError
    from chinwag.server.app import ListenError

    try:
        tls, services = server_extras(settings, data_dir)
    except TlsSetupError as exc:
        print(f"chinwag serve: {exc}", file=sys.stderr)
        return 2
    if args.with_gamebot:
        from chinwag.bot.launcher import GamebotProcess
        from chinwag.net.tls import CERT_FILE, cert_fingerprint

        fingerprint = None
        if tls is not None:  # the bot pins the server's own certificate, even a new one
            cert = Path(settings.tls_cert) if settings.tls_cert else data_dir / CERT_FILE
            fingerprint = cert_fingerprint(cert)
        # Started once the server listens, on its actual port.
        services.append(GamebotProcess(data_dir / "bots" / "gamebot", fingerprint=fingerprint))
    from chinwag.admin import BackupError, backup_before_upgrade

    try:
        backup_before_upgrade(data_dir)
    except BackupError as exc:
        print(
            f"chinwag serve: cannot back up the database before upgrading its schema: {exc}."
            " Nothing was changed; fix that and start again.",
            file=sys.stderr,
        )
        return 1
    from chinwag.server.sdnotify import SystemdNotifier

    notifier = SystemdNotifier.from_environment(os.environ)
    if notifier is not None:  # last: READY=1 once everything else has started
        services.append(notifier)
    from chinwag.bus.base import BusError
    from chinwag.server.lock import DataDirError
    from chinwag.storage.base import StoreError

    try:
        runner(serve(settings, data_dir, ssl=tls, services=services))
    except (DataDirError, ListenError, StoreError, BusError) as exc:
        print(f"chinwag serve: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_bot(args: argparse.Namespace) -> int:
    from chinwag.bot.gamebot import run_gamebot

    return run_gamebot(args)


def cmd_admin(args: argparse.Namespace) -> int:
    from chinwag.admin import run_admin

    overrides = [*args.overrides, *([f"store={args.store}"] if args.store else [])]
    try:
        settings = build(args.config, overrides)
    except SettingsError as exc:
        print(f"chinwag admin: {exc}", file=sys.stderr)
        return 2
    password = None
    if getattr(args, "admin_cmd", "") == "reset-password":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"new password for {args.nick}: ")
    data_dir = _data_dir(args.data, settings)
    return asyncio.run(run_admin(args.admin_cmd, data_dir, args, password, settings))


def cmd_chat(args: argparse.Namespace) -> int:
    from chinwag.client.tui import run_chat
    from chinwag.net.connect import ConnectError, forget_advice, prepare
    from chinwag.net.pins import KnownHosts

    try:
        plan = prepare(
            args.server, tls=args.tls, ca=args.ca, trust=args.trust, browse_timeout=args.timeout
        )
    except ConnectError as exc:
        print(f"chinwag chat: {exc}", file=sys.stderr)
        return exc.status
    return run_chat(
        plan.server,
        str(args.nick),
        password_stdin=bool(args.password_stdin),
        ssl=plan.ssl,
        invite=plan.token,
        cert_advice=forget_advice(plan.host, plan.port, KnownHosts().path),
    )


def cmd_known_hosts(args: argparse.Namespace) -> int:
    from chinwag.net.connect import parse_address
    from chinwag.net.pins import KnownHosts
    from chinwag.net.tls import format_fingerprint

    known = KnownHosts()
    if args.known_cmd == "list":
        entries = known.entries()
        if not entries:
            print(f"no server is pinned yet ({known.path})")
        for key, fp in sorted(entries.items()):
            print(f"{key} {format_fingerprint(fp)}")
        return 0
    try:
        host, port = parse_address(args.server)
    except ValueError as exc:
        print(f"chinwag known-hosts: {exc}", file=sys.stderr)
        return 2
    try:
        forgotten = known.forget(host, port)
    except OSError as exc:
        print(f"chinwag known-hosts: cannot write {known.path}: {exc}", file=sys.stderr)
        return 1
    if not forgotten:
        print(
            f"chinwag known-hosts: {args.server} is not pinned; "
            "`chinwag known-hosts list` shows the pinned servers",
            file=sys.stderr,
        )
        return 1
    print(f"forgot the certificate of {args.server}; the next connection asks to trust it again")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    from chinwag.client.gui import Ask, LanServer, Prepared, Say, run_gui
    from chinwag.net.connect import secure, target_from_arg, target_from_found
    from chinwag.net.discovery import FoundServer, browse

    found: dict[str, FoundServer] = {}  # by address, to keep what the announcement vouches for

    async def lan() -> list[LanServer]:
        # Both hooks run off the Tk thread: this one on the app's network loop...
        servers = await browse(1.5)
        found.update((f.address, f) for f in servers)
        return [LanServer(f.name, f.host, f.port, f.tls) for f in servers]

    def prepare(server: str, say: Say, ask: Ask) -> Prepared:
        # ...this one on a worker thread (it may fetch a certificate and ask to trust it).
        target = target_from_found(found[server]) if server in found else target_from_arg(server)
        context = secure(target, ask=ask, say=say, changed="ask")
        return Prepared(target.host, target.port, context, target.token)

    return run_gui(
        args.server, args.nick, theme=args.theme, scale=args.scale, lan_source=lan, prepare=prepare
    )


def cmd_servers(args: argparse.Namespace) -> int:
    import json

    from chinwag.net.connect import describe_found
    from chinwag.net.discovery import browse

    found = asyncio.run(browse(args.timeout, interfaces=args.interface or None))
    if args.json:
        print(json.dumps([f.as_json() for f in found], indent=2))
    elif not found:
        print("no chinwag server answered on the LAN", file=sys.stderr)
    else:
        print("\n".join(describe_found(found)))
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    from chinwag.admin import save_invite_token
    from chinwag.net.invites import parse_duration, run_invite

    try:
        expires = parse_duration(args.expires)
    except ValueError as exc:
        print(f"chinwag invite: {exc}", file=sys.stderr)
        return 2
    if args.uses < 1:
        print("chinwag invite: --uses must be at least 1", file=sys.stderr)
        return 2
    return asyncio.run(
        run_invite(
            _data_dir(args.data),
            host=args.host,
            port=args.port,
            uses=None if args.no_token else args.uses,
            expires=expires,
            cert=args.cert,
            plain=args.plain,
            save_token=save_invite_token,
            http_port=args.http_port,
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    handlers = {"serve": cmd_serve, "admin": cmd_admin, "chat": cmd_chat, "bot": cmd_bot}
    handlers |= {"servers": cmd_servers, "invite": cmd_invite, "gui": cmd_gui}
    handlers["known-hosts"] = cmd_known_hosts
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
