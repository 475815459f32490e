"""The ``chinwag`` command: argument parsing, then hand-off."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from pathlib import Path

from chinwag import __version__
from chinwag.config import Settings, SettingsError, build, describe


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run a chinwag server")
    p.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="TCP port (default 5050; 0 picks a free one)")
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
    p.add_argument("--print-settings", action="store_true", help="list every setting and exit")


def _chat_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("chat", help="the terminal client")
    p.add_argument("server", nargs="?", default="localhost", help="HOST[:PORT] (default localhost)")
    p.add_argument("--nick", required=True, help="your nick")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")


def _admin_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("admin", help="manage accounts in a server's data directory")
    p.add_argument("--data", type=Path, help="data directory (default: platform user-data dir)")
    cmds = p.add_subparsers(dest="admin_cmd", required=True)
    cmds.add_parser("accounts", help="list accounts")
    reset = cmds.add_parser("reset-password", help="set a new password for an account")
    reset.add_argument("nick")
    reset.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    delete = cmds.add_parser("delete", help="delete an account (its nick stays reserved)")
    delete.add_argument("nick")
    cmds.add_parser("stats", help="counts of accounts, messages, rooms")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chinwag", description="chinwag chat")
    parser.add_argument("--version", action="version", version=f"chinwag {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _chat_parser(sub)
    _admin_parser(sub)
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
        settings = build(args.config, args.overrides, host=args.host, port=args.port)
    except SettingsError as exc:
        print(f"chinwag serve: {exc}", file=sys.stderr)
        return 2
    if args.print_settings:
        print_settings(settings)
        return 0
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from chinwag.server.app import serve

    try:
        import uvloop  # type: ignore[import-not-found]

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(serve(settings, _data_dir(args.data, settings)))
    except OSError as exc:
        print(
            f"chinwag serve: cannot listen on {settings.host}:{settings.port}: {exc.strerror}. "
            "Is another server running? Pick another port with --port.",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    from chinwag.admin import run_admin

    password = None
    if getattr(args, "admin_cmd", "") == "reset-password":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"new password for {args.nick}: ")
    return asyncio.run(run_admin(args.admin_cmd, _data_dir(args.data), args, password))


def cmd_chat(args: argparse.Namespace) -> int:
    from chinwag.client.tui import run_chat

    return run_chat(str(args.server), str(args.nick), password_stdin=bool(args.password_stdin))


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    handlers = {"serve": cmd_serve, "admin": cmd_admin, "chat": cmd_chat}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
