"""Issue 15 in the client library against a real `chinwag serve`: stored DM receipts
after a restart, the receipts setting read back and synced, history forwards."""

from __future__ import annotations

import pytest
from client_events import is_body, until
from conftest import ServerProcess
from test_message_features import WAIT, Clients, account, clients

from chinwag.client import CaughtUp, Receipt, SettingsChanged, Welcome

__all__ = ["clients"]  # the fixture, imported for pytest


async def test_the_dm_timeline_survives_a_client_restart(
    server: ServerProcess, clients: Clients
) -> None:
    alice = await account(clients, server.port, "alice")
    bob = await account(clients, server.port, "bob")
    await alice.set_receipts(True)
    await bob.set_receipts(True)
    first = await alice.wait_sent(alice.dm("bob", "first"), WAIT)
    second = await alice.wait_sent(alice.dm("bob", "second"), WAIT)
    await until(bob, is_body("second"))  # on bob's device: both delivered
    await until(alice, lambda e: e == Receipt("bob", second.id, "delivered"))
    await bob.mark_read(first.id, with_="alice")
    await until(alice, lambda e: isinstance(e, Receipt) and e.state == "read")
    await alice.close()

    again = await account(clients, server.port, "alice", "alice-restarted")
    got = await until(again, lambda e: isinstance(e, Receipt) and e.state == "read")
    welcome = next(e for e in got if isinstance(e, Welcome))
    caught_up = next(e for e in got if isinstance(e, CaughtUp))
    assert welcome.receipts is True and again.receipts_on is True
    assert caught_up.receipts == {"bob": (second.id, first.id)}
    assert Receipt("bob", second.id, "delivered") in got
    assert got[-1] == Receipt("bob", first.id, "read")
    page = await again.history(with_="bob")
    assert page.receipts == (second.id, first.id)
    shown = [again.state.dm_status(m) for m in page.messages]
    assert shown == ["read", "delivered"]


async def test_the_setting_is_read_back_and_follows_another_device(
    server: ServerProcess, clients: Clients
) -> None:
    phone = await account(clients, server.port, "carol", "phone")
    desk = await account(clients, server.port, "carol", "desk")
    assert (phone.receipts_on, await desk.settings()) == (False, False)
    await desk.set_receipts(True)
    got = await until(phone, lambda e: isinstance(e, SettingsChanged))
    assert got[-1] == SettingsChanged(True) and phone.receipts_on is True
    assert await phone.settings() is True


async def test_history_pages_forwards_with_after(server: ServerProcess, clients: Clients) -> None:
    alice = await clients.open(server.port, "alice")
    ids = [(await alice.wait_sent(alice.say("lobby", f"m{n}"), WAIT)).id for n in range(5)]
    page = await alice.history("lobby", after=ids[1], limit=2)
    assert ([m.id for m in page.messages], page.more) == (ids[2:4], True)
    page = await alice.history("lobby", after=ids[3])
    assert ([m.body for m in page.messages], page.more) == (["m4"], False)
    with pytest.raises(ValueError, match="before or after"):
        await alice.history("lobby", before=ids[3], after=ids[1])
