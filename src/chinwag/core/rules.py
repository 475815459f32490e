"""Stateless chat rules: room names and message bodies (protocol v1 §3, §4)."""

from __future__ import annotations

import re

from chinwag.errors import BadBody, BadRoom

LOBBY = "lobby"
MAX_BODY = 4000

_ROOM = re.compile(r"[a-z0-9_-]{1,32}")
# Control characters (C0, DEL, C1) other than \n and \t.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Every control character (C0, DEL, C1), newline and tab included.
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> bool:
    """No control characters (C0, DEL, C1; newline and tab included): one line of text
    that cannot drive a terminal (topics, reasons, away messages, real names, wallops)."""
    return _ANY_CONTROL.search(text) is None


def parse_room(raw: str) -> str:
    """The room's canonical (lowercase) name.

    Raises:
        BadRoom: not 1-32 of ASCII a-z 0-9 _ - (case-insensitively).
    """
    # ASCII-only lowercasing: str.lower() would map "K" (Kelvin sign) to "k".
    name = raw.translate(_ASCII_LOWER)
    if not _ROOM.fullmatch(name):
        raise BadRoom(f"{raw[:40]!r} is not a room name: use 1-32 of a-z 0-9 _ -")
    return name


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def check_body(body: str) -> None:
    """Raises BadBody unless 1-4000 code points with no control characters but \\n, \\t."""
    if not body:
        raise BadBody("the message is empty")
    if len(body) > MAX_BODY:
        raise BadBody(f"the message has {len(body)} characters; the limit is {MAX_BODY}")
    if _CONTROL.search(body):
        raise BadBody("the message contains control characters (only newline and tab are allowed)")
