"""Monitoring nicks (irccaps; IRC ``MONITOR``, protocol §13.1): told when they come and go.

A session keeps a list of nicks (at most ``monitor_max``; in memory, for the
session's life) and is told (`MonitorNotice`) when one of them comes online —
its first session on any node starts — or goes offline — its last one ends —
whether or not it shares a room with the asker. Who is online is the
registry's (`OnlineRegistry.online`: this node and its view of the others), so
any transport and any node counts. The registry keeps, per nick, the sessions
here that monitor it (`OnlineRegistry.watchers`) and tells them
(`OnlineRegistry.tell_watchers`) from the places where someone comes online
or goes offline: a login (core/login.py), the last logout
(`OnlineRegistry.drop`), another node's `Online` and `Offline` (core/nodes.py).

Blocks (§11) do not hide anyone from a monitor, either way: a block stops what
the blocked one *sends* reaching the blocker, and the blocked one is never
told of it; presence is not hidden in rooms either, and hiding it here would
tell them (someone seen in a room would read as offline).
"""

from __future__ import annotations

from chinwag.config import Settings
from chinwag.core.sessions import OnlineRegistry, Session, parse_nick_cached, reply
from chinwag.errors import BadRequest
from chinwag.protocol.events import Monitor, MonitorReply


class Monitors:
    """Changes a session's list of monitored nicks and says who of them is online.

    Args:
        settings: ``monitor_max``.
        registry: who is online, and who monitors whom here.
    """

    def __init__(self, settings: Settings, registry: OnlineRegistry) -> None:
        self.settings = settings
        self._registry = registry

    def monitor(self, session: Session, cmd: Monitor) -> None:
        """Carry out ``cmd``; answer with the status of the nicks added (or of the whole list).

        Raises:
            BadNick: a nick that cannot be one; nothing changed.
            BadRequest: the list would hold more than ``monitor_max`` nicks; nothing changed.
        """
        added = {parse_nick_cached(nick).key: nick for nick in cmd.add}  # BadNick first
        removed = {parse_nick_cached(nick).key for nick in cmd.remove}
        mine = {} if cmd.clear or session.monitoring is None else dict(session.monitoring)
        for key in removed:
            mine.pop(key, None)
        mine.update(added)
        most = self.settings.monitor_max
        if len(mine) > most:
            raise BadRequest(
                f"a monitor list holds at most {most} nicks; this would make it {len(mine)}",
                reason="monitor_max",
                limit=most,
            )
        registry = self._registry
        old = session.monitoring or {}
        for key in old.keys() - mine.keys():
            registry.unwatch(session, key)
        for key in mine.keys() - old.keys():
            registry.watchers.setdefault(key, set()).add(session)
        session.monitoring = mine or None
        wanted = added if cmd.add or cmd.remove or cmd.clear else mine
        online: list[str] = []
        offline: list[str] = []
        for key, nick in wanted.items():
            shown = registry.online(key)
            if shown is None:
                offline.append(nick)
            else:
                online.append(shown)
        reply(session, MonitorReply(online=tuple(online), offline=tuple(offline), ref=cmd.ref))
