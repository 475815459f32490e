"""The client library's ``away`` (issue 19) against a real `chinwag serve`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from client_events import until
from conftest import ServerProcess
from test_message_features import WAIT, Clients

from chinwag.client import AwayChanged
from chinwag.errors import BadRequest


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[Clients]:
    made = Clients(tmp_path)
    yield made
    await made.close()


async def test_away_reaches_room_peers_who_and_the_ack_of_a_dm(
    server: ServerProcess, clients: Clients
) -> None:
    alice = await clients.open(server.port, "alice")
    bob = await clients.open(server.port, "bob")
    await alice.away("gone fishing")
    await until(bob, lambda e: isinstance(e, AwayChanged) and e.message == "gone fishing")
    users = {u.nick: u.away for u in await bob.who("lobby")}
    assert users == {"alice": "gone fishing", "bob": None}
    sent = await bob.wait_sent(bob.dm("alice", "catch anything?"), WAIT)
    assert sent.away == "gone fishing"

    with pytest.raises(BadRequest, match="limit is 300"):
        await alice.away("x" * 301)
    await alice.away()
    got = await until(bob, lambda e: isinstance(e, AwayChanged))
    assert got[-1] == AwayChanged("alice", None)
    assert {u.nick: u.away for u in await bob.who("lobby")}["alice"] is None
