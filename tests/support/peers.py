"""Raw peers of a server on loopback, connected and logged in.

Every server test module had its own copy of ``connect`` and ``login``; they
differed only in the class of peer they made. A module that uses plain
`Peer`s imports ``connect`` and ``login`` from here; one with its own peer
class binds them once::

    _maker = PeerMaker(Client)
    connect, login = _maker.connect, _maker.login
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from conftest import Peer

P = TypeVar("P", bound=Peer)


class PeerMaker(Generic[P]):
    """Makes peers of class ``kind``; each is added to the test's ``peers`` list,
    which the ``peers`` fixture closes at the end of the test."""

    def __init__(self, kind: type[P]) -> None:
        self.kind = kind

    async def connect(self, peers: list[Peer], port: int) -> P:
        """A new peer connected to the server on ``port``."""
        peer = await self.kind.connect(port)
        assert isinstance(peer, self.kind)
        peers.append(peer)
        return peer

    async def login(self, peers: list[Peer], port: int, nick: str, **extra: Any) -> P:
        """A new peer logged in as ``nick`` (``extra``: more hello fields), past caught_up."""
        peer = await self.connect(peers, port)
        await peer.hello(nick, **extra)
        return peer


_plain = PeerMaker(Peer)
connect = _plain.connect
login = _plain.login
