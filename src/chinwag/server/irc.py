"""One IRC connection: the JSON-lines connection's session, with the IRC codec on the wire.

`IrcConnection` is a `Connection` (the same worker, pipelining, back-pressure,
per-address cap, login throttle, flood control, deadlines and graceful close)
that decodes with :class:`~chinwag.protocol.irc.IrcServerCodec` and renders
every frame with that connection's codec (an IRC line depends on the
capabilities the client enabled). Lines the codec answers on its own (``CAP``,
``PING``, ``417``…) go through the same inbox, so they are written in their
turn among the hub's answers.

Two rules differ from JSON lines. ``QUIT`` logs out without moving the
device's cursor: IRC has no ``seen``, and the cursor moves only when the client
answers a ``PING`` sent after what it was sent (the codec turns that ``PONG``
into ``seen``). And a peer is not sniffed: whatever it sends is IRC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from chinwag.core.hub import Frame
from chinwag.errors import NotLoggedIn
from chinwag.protocol.events import Bye, Incoming
from chinwag.protocol.irc import IrcServerCodec, Reply
from chinwag.server.connection import _INBOX_HIGH, Connection

if TYPE_CHECKING:
    from chinwag.server.connection import Host

__all__ = ["IrcConnection"]


class IrcConnection(Connection):
    """The transport side of one IRC client connection; the hub's `Outlet`."""

    __slots__ = ("_irc", "_renderer")

    def __init__(self, server: Host) -> None:
        super().__init__(server)
        self._irc = IrcServerCodec(
            server_name=self._settings.server_name,
            hard_limit=self._settings.irc_hard_line_limit,
        )
        # One bound method for the connection's life: frames cache bytes per renderer.
        self._renderer = self._irc.render

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        items = self._irc.receive_data(data)
        if items:
            self._last_rx = self._loop.time()
            # A Reply is not a hub command: _process writes it in its turn.
            self._inbox.extend(cast("list[Incoming]", items))
            self._kick()
            if len(self._inbox) > _INBOX_HIGH and self._transport is not None:
                self._transport.pause_reading()
                self._reading_paused = True

    def send(self, frame: Frame) -> None:
        if self._closing:
            return
        wire = frame.render(self._renderer)
        self._take_followups()
        if not wire:
            return
        self._out.append(wire)
        self._out_size += len(wire)
        transport = self._transport
        assert transport is not None
        queued = self._out_size - len(wire) + transport.get_write_buffer_size()
        if queued > self._settings.out_buffer_limit:
            self._cut_off()
            return
        if not self._marked:
            self._marked = True
            self._server.flusher.mark(self)

    def _queue(self, frame: Frame) -> bytes:
        wire = frame.render(self._renderer)
        self._out.append(wire)
        self._out_size += len(wire)
        return wire

    async def _process(self, item: Incoming) -> None:
        reply = cast("object", item)
        if isinstance(reply, Reply):
            self._write_reply(reply)
            return
        if isinstance(item, Bye):
            # QUIT: no clean logout, so the cursor stays where the last PONG put it.
            if self._session is not None:
                session, self._session = self._session, None
                await self._server.hub.logout(session, clean=False)
            self._send_event(Bye(ref=item.ref))
            self.close("quit")
            return
        await super()._process(item)

    def _take_followups(self) -> None:
        """Carry out the commands the codec asked for while rendering (NAMES after a JOIN)."""
        if self._irc.followups:
            self._inbox.extend(self._irc.followups)
            self._irc.followups.clear()
            self._kick()

    def _write_reply(self, reply: Reply) -> None:
        if self._session is None and not self._logged_in:
            # Registration lines count like every frame before login.
            self._prelogin_frames += 1
            if self._prelogin_frames > self._settings.prelogin_max_frames:
                why = "too many lines before registration; connection closed"
                self._error(NotLoggedIn(why), None)
                self.close("too many frames before login")
                return
        self._take_followups()  # registration over: the NAMES of the rooms joined
        self._out.append(reply.wire)
        self._out_size += len(reply.wire)
        if not self._marked:
            self._marked = True
            self._server.flusher.mark(self)
