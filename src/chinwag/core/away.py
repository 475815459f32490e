"""Away messages (issue 19): a principal says it is away, its room peers are told.

The state is the principal's (an account's, shared by all its sessions, or one
guest's): any of its sessions sets or clears it, and it ends with the
principal's last session. Who shares a room with it gets an `AwayNotice` (as
presence notices: not in rooms over ``presence_limit``), ``who`` rows carry the
message, and the ack of a DM to someone away carries theirs (IRC ``301``).
Other nodes hear it as `AwaySet` and keep it in their view (`RemotePrincipal.away`).
"""

from __future__ import annotations

from chinwag.bus.base import AwaySet
from chinwag.config import Settings
from chinwag.core.rules import one_line
from chinwag.core.sessions import (
    Frame,
    OnlineRegistry,
    Principal,
    RemotePrincipal,
    Session,
    ok,
)
from chinwag.errors import BadRequest
from chinwag.protocol.events import Away, AwayNotice


class AwayStates:
    """Sets and clears away messages, and tells the peers.

    Args:
        settings: ``away_max_length``, ``presence_limit``.
        registry: who is online, here and (its view) on the other nodes.
    """

    def __init__(self, settings: Settings, registry: OnlineRegistry) -> None:
        self.settings = settings
        self._registry = registry

    def set(self, session: Session, cmd: Away) -> None:
        """Set (or, with no or an empty message, clear) the session's principal's away message.

        Raises:
            BadRequest: the message is too long or holds control characters; nothing changed.
        """
        message = cmd.message or None
        if message is not None:
            most = self.settings.away_max_length
            if len(message) > most:
                raise BadRequest(
                    f"the away message has {len(message)} characters; the limit is {most}"
                )
            if not one_line(message):
                raise BadRequest("the away message is one line without control characters")
        p = session.principal
        changed = p.away != message
        p.away = message
        ok(session, cmd.ref)
        if changed:
            self._registry.announce(AwaySet(self._registry.node, p.pid, message))
            self._notify(p, message, exclude=session)

    def heard(self, e: AwaySet) -> None:
        """Another node's principal is away (or back): keep it, and tell the peers here."""
        remote = self._registry.remote.nodes.get(e.node)
        p = remote.by_pid.get(e.pid) if remote is not None else None
        if p is not None:
            p.away = e.message
        local = self._registry.by_pid.get(e.pid)
        if local is not None:
            # The same account, online here too: its state is one.
            if local.away == e.message:
                return
            local.away = e.message
            self._notify(local, e.message, exclude=None)
        elif p is not None:
            self._notify(p, e.message, exclude=None)

    def _notify(
        self, who: Principal | RemotePrincipal, message: str | None, exclude: Session | None
    ) -> None:
        """One notice to every session here that shares a room with ``who``, and to its own;
        and (``monitor``) to the sessions here that monitor it (irccaps)."""
        self._registry.tell_peers(
            who,
            Frame(AwayNotice(nick=who.nick, message=message)),
            Frame(AwayNotice(nick=who.nick, message=message, monitor=True)),
            exclude,
        )
