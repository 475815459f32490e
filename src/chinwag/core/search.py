"""Search (protocol §8): words in what the asker may see now, newest first."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from chinwag.config import Settings
from chinwag.core.blocks import BLOCKED_PAGES, visible
from chinwag.core.delivery import message_event
from chinwag.core.rooms import REPLY_BYTES_PER_TOKEN, reply_bytes
from chinwag.core.rules import parse_room
from chinwag.core.sessions import Session, reply
from chinwag.errors import BadRequest, NotMember
from chinwag.protocol.events import Results, Search
from chinwag.storage.base import SearchScope, Store, StoredMessage

SEARCH_DEFAULT = 20  # messages per reply when the request names no limit (§8)
MAX_QUERY = 1_000  # code points of one query

# What the index counts as a word (unicode61: letters, digits, marks); the rest separates.
_WORD = re.compile(r"[^\W_]+")


def query_words(q: str, max_words: int) -> list[str]:
    """The words of a query, as the index splits text (raises `BadRequest`)."""
    if len(q) > MAX_QUERY:
        raise BadRequest(f"search: a query is at most {MAX_QUERY} characters")
    words = list(dict.fromkeys(_WORD.findall(q)))
    if not words:
        raise BadRequest("search: give at least one word to look for")
    if len(words) > max_words:
        raise BadRequest(f"search: at most {max_words} words; leave some out")
    return words


class Searching:
    """The ``search`` command.

    Args:
        settings: limits (``search_max``, ``search_max_words``).
        store: the index.
        resolve: (principal, display nick, online?) of a nick (`Posting.resolve`).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        resolve: Callable[[str], Awaitable[tuple[str, str, bool]]],
    ) -> None:
        self.settings = settings
        self._store = store
        self._resolve = resolve

    async def search(self, session: Session, cmd: Search) -> None:
        """Reply with a page of the messages this session may see that hold every word."""
        words = query_words(cmd.q, self.settings.search_max_words)
        p = session.principal
        limit = min(cmd.limit or SEARCH_DEFAULT, self.settings.search_max)
        if cmd.room is not None:
            room = parse_room(cmd.room)
            if room not in p.rooms:
                raise NotMember(f"you are not in #{room}")
            scope = SearchScope(rooms=(room,), me=None)
        elif cmd.with_ is not None:
            other, _, _ = await self._resolve(cmd.with_)
            scope = SearchScope(rooms=(), me=p.pid, with_=other)
        else:
            scope = SearchScope(rooms=tuple(sorted(p.rooms)), me=p.pid)
        if cmd.sender is not None:
            sender, _, _ = await self._resolve(cmd.sender)
            scope = SearchScope(scope.rooms, scope.me, scope.with_, sender)
        page = await self._store.search(words, scope, before=cmd.before, limit=limit)
        found = page.messages
        if p.blocked:
            # Issue 16: the blocked ones' messages are left out; a page of nothing
            # else is followed by older ones (a few at most), as in `history`.
            found = visible(p.blocked, found)
            for _ in range(BLOCKED_PAGES):
                if found or not page.more or not page.messages:
                    break
                before = page.messages[-1].id  # newest first: the oldest is last
                page = await self._store.search(words, scope, before=before, limit=limit)
                found = visible(p.blocked, page.messages)
        # audit4: a page is cut at history_max_bytes and paid for by its size, as
        # history's; before, one search (one token) sent up to 100 whole bodies.
        kept, size = _within(found, self.settings.history_max_bytes)
        more = page.more or len(kept) < len(found)
        session.bucket.take(size / REPLY_BYTES_PER_TOKEN)
        messages = tuple(message_event(m, own=m.sender == p.pid) for m in kept)
        reply(session, Results(q=cmd.q, messages=messages, more=more, ref=cmd.ref))


def _within(found: list[StoredMessage], most: int) -> tuple[list[StoredMessage], int]:
    """The newest of ``found`` (newest first) that fit in ``most`` bytes (at least one),
    and their size, estimated as a history page's (`reply_bytes`)."""
    size = 0
    for i, m in enumerate(found):
        grown = size + reply_bytes(m)
        if grown > most and i > 0:
            return found[:i], size
        size = grown
    return found, size
