"""Bots for chinwag: a framework (:class:`Bot`) and the game bot (``chinwag bot games``).

A bot is a client: it logs in with :class:`chinwag.client.ChatClient` as a
registered account marked as a bot, and answers commands sent to it by direct
message (or addressed to it in a room). See ``docs/bots.md``.
"""

from __future__ import annotations

from chinwag.bot.framework import (
    Actions,
    Bot,
    BotError,
    Command,
    Context,
    Undeliverable,
    clean_body,
    default_data_dir,
    parse_command,
    quote,
)
from chinwag.bot.store import Store

__all__ = [
    "Actions",
    "Bot",
    "BotError",
    "Command",
    "Context",
    "Store",
    "Undeliverable",
    "clean_body",
    "default_data_dir",
    "parse_command",
    "quote",
]
