"""What another node said, applied by a real hub (issue 13): DMs to someone online elsewhere.

A real hub, store and hasher; the other node's events are handed to the hub as
its bus would (`Nodes.receive`), so the moment each one arrives is the test's.
"""

from __future__ import annotations

from pathlib import Path

from support.hub import HubHarness

from chinwag.bus.base import Offline, Online
from chinwag.core.accounts import parse_nick
from chinwag.protocol.events import Dm
from chinwag.storage.base import AccountRow


async def test_a_dm_to_a_guest_on_another_node_goes_to_that_guest_and_skips_the_quota(
    tmp_path: Path,
) -> None:
    async with HubHarness.open(tmp_path, offline_quota=1) as a:
        a.hub._nodes.receive(Online("n2", "g:1", "bob", "bob", False, False, ("lobby",)))
        ann = await a.login("ann")
        for n in range(3):  # over the offline quota: bob is online, elsewhere
            await ann.send(Dm(to="bob", body=f"hi {n}", ref=str(n)))
            assert (await ann.next("ack"))["ref"] == str(n)
        stored = await a.store.messages_between(0, await a.store.max_message_id())
        assert {m.recipient for m in stored} == {"g:1"}

        a.hub._nodes.receive(Offline("n2", "g:1"))
        await ann.send(Dm(to="bob", body="still there?", ref="gone"))
        assert (await ann.next("error"))["code"] == "no_such_user"


async def test_a_dm_to_a_guest_who_just_registered_elsewhere_goes_to_the_account(
    tmp_path: Path,
) -> None:
    async with HubHarness.open(tmp_path) as a:
        # Node n2 said bob the guest is online; then bob registered there, and the
        # account is in the store before node n2's word of it reaches this node.
        a.hub._nodes.receive(Online("n2", "g:1", "bob", "bob", False, False, ("lobby",)))
        password_hash = await a.hasher.hash("bob's password")
        row = AccountRow("bob", "bob", parse_nick("bob").skeleton, password_hash, 0, False, False)
        await a.store.create_account(row)
        ann = await a.login("ann")
        await ann.send(Dm(to="bob", body="welcome aboard", ref="1"))
        ack = await ann.next("ack")
        [dm] = await a.store.messages_between(ack["id"] - 1, ack["id"])
        assert dm.recipient == "a:bob", "not the guest session that no longer exists"
