"""One IRC connection: the JSON-lines connection, with the IRC codec on the wire.

`IrcConnection` is a `Connection` (the same byte moving, back-pressure, write
coalescing, per-address cap and graceful close) whose session is an
`IrcSessionTask`: the shared session task and driver (login throttle, flood
control, pre-login limits, deadlines, pipelining), with two IRC rules. It
decodes with :class:`~chinwag.protocol.irc.IrcServerCodec` and renders every
frame with that connection's codec (an IRC line depends on the capabilities
the client enabled). Lines the codec answers on its own (``CAP``, ``PING``,
``417``…) are :class:`~chinwag.protocol.irc.Reply` commands: they go through
the session's inbox like every frame (counted before login, kept in order) and
are written in their turn.

Fan-out is rendered once per set of tag capabilities, not once per connection:
the lines of a room message are the same for every IRC member that enabled the
same ``server-time``/``message-tags``, so a frame keeps them under a shared
renderer (:meth:`~chinwag.protocol.irc.IrcServerCodec.shared` says when).

The two rules: ``QUIT`` logs out without moving the device's cursor (IRC has
no ``seen``: the cursor moves only when the client answers a ``PING`` sent
after what it was sent, which the codec turns into ``seen``); and a peer is
not sniffed: whatever it sends is IRC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from chinwag.core.driver import BYE, Handle, LogOut, Send, SessionDriver
from chinwag.core.sessions import Frame
from chinwag.protocol.events import Command, Incoming, Outgoing
from chinwag.protocol.irc import IrcServerCodec, Reply
from chinwag.server.connection import Connection
from chinwag.server.session_task import SessionTask, reply_frame

if TYPE_CHECKING:
    from chinwag.config import Settings
    from chinwag.core.driver import Action
    from chinwag.core.hub import Hub
    from chinwag.server.connection import Host

__all__ = ["IrcConnection", "IrcDriver", "IrcSessionTask"]


class IrcDriver(SessionDriver):
    """The session driver, for whom a `Reply` is a frame like any other."""

    __slots__ = ()

    def receive(self, item: Incoming) -> Action:
        action = super().receive(item)
        reply = cast("object", item)  # the transport feeds Replies beside Incoming items
        if isinstance(reply, Reply) and type(action) is Send:
            # Before login a frame that is not a hello is refused; a Reply is the
            # codec's answer to registration: counted like every frame, then written.
            return Handle(reply)
        return action


class IrcSessionTask(SessionTask):
    """The shared session task: writes `Reply` lines, and QUIT keeps the cursor."""

    __slots__ = ("_conn",)

    def __init__(self, conn: IrcConnection, hub: Hub, settings: Settings, now: float) -> None:
        super().__init__(conn, hub, settings, now)
        self._conn = conn
        self.driver = IrcDriver(settings, now)

    def queue(self, items: list[Incoming]) -> None:
        """Carry out ``items`` after what is queued (they come from the server, not the peer)."""
        self._inbox.extend(items)
        self._kick()

    async def _handle(self, command: Command) -> None:
        if type(command) is Reply:
            self._conn.write_reply(command.wire)
            return
        await super()._handle(command)

    async def _carry_out(self, action: Action) -> None:
        if type(action) is LogOut:
            # QUIT: no clean logout, so the cursor stays where the last PONG put it.
            if self._session is not None:
                session, self._session = self._session, None
                await self._hub.logout(session, clean=False, quit=action.quit)
            self._link.send(reply_frame(BYE, action.ref))
            self._link.close("quit")
            return
        await super()._carry_out(action)


class IrcConnection(Connection):
    """The transport side of one IRC client connection; the hub's `Outlet`."""

    transport_name: ClassVar[str] = "irc"

    __slots__ = ("_irc", "_renderer")

    def __init__(self, server: Host) -> None:
        super().__init__(server)
        self._irc = IrcServerCodec(
            server_name=self._settings.server_name,
            hard_limit=self._settings.irc_hard_line_limit,
            multiline_max_lines=self._settings.irc_multiline_max_lines,
            multiline_max_bytes=self._settings.irc_multiline_max_bytes,
            away_max_length=self._settings.away_max_length,
            auto_join=self._settings.irc_auto_join,
            monitor_max=self._settings.monitor_max,
            real_name_max=self._settings.real_name_max,
            registration_open=self._settings.registration == "open",
        )
        # One bound method for the connection's life: frames cache bytes per renderer.
        self._renderer = self._irc.render
        # The login deadline counts from here, as for the connection it replaces.
        self._session = IrcSessionTask(self, server.hub, self._settings, self._loop.time())

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        items = self._irc.receive_data(data)
        if items:
            # A Reply is a Command of this transport's: the task hands it back to us.
            self._session.feed(cast("list[Incoming]", items), self._loop.time())

    def send(self, frame: Frame) -> None:
        if self._closing:
            return
        wire = self._rendered(frame)
        self._take_followups()
        if wire:
            self._write(wire)

    def _queue(self, frame: Frame) -> bytes:
        wire = self._rendered(frame)
        self._take_followups()
        self._out.append(wire)
        self._out_size += len(wire)
        return wire

    def _rendered(self, frame: Frame) -> bytes:
        """The frame's lines for this client: the shared ones when they are the same.

        A message fanned out to a room is rendered once per set of tag
        capabilities (:class:`~chinwag.protocol.irc.SharedRenderer`) and the
        frame keeps those bytes for every IRC member with that set; anything
        that reads differently for this client is rendered for it alone.
        """
        events = (frame.event,) if frame.event is not None else _events(frame)
        shared = self._irc.shared(events)
        return frame.render(shared if shared is not None else self._renderer)

    def write_reply(self, wire: bytes) -> None:
        """Write lines the codec answered on its own (their turn has come)."""
        if self._closing:
            return
        self._take_followups()  # registration over: the NAMES of the rooms joined
        self._write(wire)

    def _take_followups(self) -> None:
        """Carry out the commands the codec asked for while rendering (NAMES after a JOIN)."""
        if self._irc.followups:
            session = self._session
            assert isinstance(session, IrcSessionTask)
            session.queue(self._irc.followups)
            self._irc.followups = []

    def _write(self, wire: bytes) -> None:
        self._out.append(wire)
        self._out_size += len(wire)
        transport = self._transport
        assert transport is not None
        # As Connection.send: what was queued before decides whether to cut off.
        queued = self._out_size - len(wire) + transport.get_write_buffer_size()
        if queued > self._settings.out_buffer_limit:
            self._cut_off()
            return
        if not self._marked:
            self._marked = True
            self._server.flusher.mark(self)


def _events(frame: Frame) -> list[Outgoing]:
    """The events a frame of parts stands for, in order."""
    out: list[Outgoing] = []
    for part in frame.parts:
        if part.event is not None:
            out.append(part.event)
        else:
            out.extend(_events(part))
    return out
