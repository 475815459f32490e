"""``/away`` in the terminal client (issue 19), against a real `chinwag serve`."""

from __future__ import annotations

from client_events import until
from conftest import ServerProcess
from test_tui import Harness, harness

from chinwag.client import AwayChanged

__all__ = ["harness"]  # the fixture, imported for pytest


async def test_away_from_the_terminal_reaches_a_library_client_and_back(
    server: ServerProcess, harness: Harness
) -> None:
    bob = await harness.client(server.port, "bob")
    alice = harness.tty(server.port, "alice")
    await alice.expect(r"#lobby>")
    alice.sendline("/away making tea")
    await alice.expect(r"you are marked away; /away alone says you are back")
    await until(bob, lambda e: isinstance(e, AwayChanged) and e.message == "making tea")
    alice.sendline("/who")
    await alice.expect(r"alice \(guest\) \(away: making tea\)")
    await bob.away("out for a walk")
    await alice.expect(r"bob is away: out for a walk")
    alice.sendline("/away")
    await alice.expect(r"you are no longer marked away")
    await until(bob, lambda e: isinstance(e, AwayChanged) and e.message is None)
    alice.sendline("/quit")
    assert await alice.wait_exit() == 0
