"""stats and whowas (issue 19, IRC's LUSERS and WHOWAS) on a real hub.

Another node's people are handed to the hub as its bus would (`Nodes.receive`).
"""

from __future__ import annotations

from pathlib import Path

from support.hub import HubHarness

from chinwag.bus.base import Online
from chinwag.protocol.events import Stats, WhoWas


async def test_stats_counts_each_person_once_across_nodes(tmp_path: Path) -> None:
    async with HubHarness.open(tmp_path) as a:
        ann = await a.login("ann")
        # bob only elsewhere (in a room nobody here is in); ann on both nodes.
        a.hub._nodes.receive(Online("n2", "g:9", "bob", "bob", False, False, ("lobby", "dev")))
        assert ann.session is not None
        pid = ann.session.principal.pid
        a.hub._nodes.receive(Online("n2", pid, "ann", "ann", False, False, ("lobby",)))
        await ann.send(Stats(ref="s"))
        stats = await ann.next("stats")
        assert (stats["online"], stats["here"], stats["rooms"], stats["nodes"]) == (2, 1, 2, 2)


async def test_whowas_names_a_departure_by_nick_case_insensitively(tmp_path: Path) -> None:
    async with HubHarness.open(tmp_path) as a:
        bob = await a.login("Bob")
        await bob.logout()
        ann = await a.login("ann")
        await ann.send(WhoWas(nick="BOB", ref="w"))
        reply = await ann.next("whowas")
        assert [(e["nick"], e["account"]) for e in reply["entries"]] == [("Bob", False)]
        await ann.send(WhoWas(nick="not a nick!", ref="x"))
        assert (await ann.next("whowas"))["entries"] == []
