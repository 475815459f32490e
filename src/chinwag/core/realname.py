"""Real names (irccaps; IRC ``SETNAME``, protocol §13.1): a session changes the one it gave.

A real name is a session's (an IRC client's ``USER`` gives it; memory only, as
in issue 19's ``who``). A change is told as `RealNameNotice` to the sessions
that share a room with the principal (as away notices: not in rooms over
``presence_limit``, not to those who block it), to its other sessions, and to
the sessions that monitor it; other nodes hear it as `RealNameSet` and tell
theirs. (Their ``who`` rows carry no real name of someone on another node: see
core/rooms.py.)
"""

from __future__ import annotations

from chinwag.bus.base import RealNameSet
from chinwag.config import Settings
from chinwag.core.rules import one_line
from chinwag.core.sessions import Frame, OnlineRegistry, Principal, RemotePrincipal, Session, ok
from chinwag.errors import BadRequest
from chinwag.protocol.events import RealNameNotice, SetName


class RealNames:
    """Sets a session's real name and tells who should hear of it.

    Args:
        settings: ``real_name_max``, ``presence_limit``.
        registry: who is online, here and (its view) on the other nodes.
    """

    def __init__(self, settings: Settings, registry: OnlineRegistry) -> None:
        self.settings = settings
        self._registry = registry

    def set(self, session: Session, cmd: SetName) -> None:
        """Set the session's real name.

        Raises:
            BadRequest: empty, too long or not one line; nothing changed.
        """
        name = cmd.real_name
        most = self.settings.real_name_max
        if not name.strip():
            raise BadRequest("a real name is not empty", reason="real_name")
        if len(name) > most:
            raise BadRequest(
                f"the real name has {len(name)} characters; the limit is {most}",
                reason="real_name",
            )
        if not one_line(name):
            raise BadRequest(
                "a real name is one line without control characters", reason="real_name"
            )
        session.real_name = name
        ok(session, cmd.ref)
        if cmd.quiet:
            return
        p = session.principal
        self._registry.announce(RealNameSet(self._registry.node, p.pid, name))
        self._notify(p, name, exclude=session)

    def heard(self, e: RealNameSet) -> None:
        """A session on another node changed its real name: tell the peers here."""
        who: Principal | RemotePrincipal | None = self._registry.by_pid.get(e.pid)
        if who is None:
            who = self._registry.remote.get(e.pid)
        if who is not None:
            self._notify(who, e.real_name, exclude=None)

    def _notify(self, who: Principal | RemotePrincipal, name: str, exclude: Session | None) -> None:
        self._registry.tell_peers(
            who,
            Frame(RealNameNotice(nick=who.nick, real_name=name)),
            Frame(RealNameNotice(nick=who.nick, real_name=name, monitor=True)),
            exclude,
        )
