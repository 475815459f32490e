"""Bots that say so (irccaps; IRC ``MODE nick +B``, protocol §13.2).

chinwag's bot flag is the principal's: ``who`` rows carry it, IRC shows it as
``335`` in ``WHOIS``, the ``B`` flag of ``WHO`` and the ``bot`` tag of live
messages. ``register`` with ``bot`` sets it for an account (§5); a session may
also set or clear it later: an account's flag is stored (every node reads it
at its next login; the others are told now, as `Online` again), a guest's
lasts as long as its session.
"""

from __future__ import annotations

from chinwag.core.nodes import online_event
from chinwag.core.sessions import OnlineRegistry, Session, ok
from chinwag.errors import NotFound
from chinwag.protocol.events import SetBot
from chinwag.storage.base import Store


class BotMode:
    """Sets and clears the bot flag of a session's principal.

    Args:
        store: where an account's flag is kept.
        registry: who is online, and how the other nodes are told.
    """

    def __init__(self, store: Store, registry: OnlineRegistry) -> None:
        self._store = store
        self._registry = registry

    async def set(self, session: Session, cmd: SetBot) -> None:
        """Set the flag (saying what it is already is an ``ok`` too).

        Raises:
            NotFound: the account was deleted meanwhile; nothing changed.
        """
        p = session.principal
        if p.bot != cmd.on:
            if p.account and not await self._store.set_bot(p.key, cmd.on):
                raise NotFound("this account no longer exists")
            p.bot = cmd.on
            registry = self._registry
            registry.announce(online_event(registry.node, p))  # the others' views follow
        ok(session, cmd.ref)
