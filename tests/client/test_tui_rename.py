"""A guest's nick change (ircmsg) in the terminal client and the library, against a
real `chinwag serve`."""

from __future__ import annotations

from client_events import until
from conftest import Peer, ServerProcess
from test_tui import Harness, harness

from chinwag.client import Renamed

__all__ = ["harness"]  # the fixture, imported for pytest


async def test_a_guest_s_new_nick_is_shown_in_the_terminal_and_told_to_the_library(
    server: ServerProcess, harness: Harness
) -> None:
    carl = await harness.client(server.port, "carl")
    alice = harness.tty(server.port, "alice")
    await alice.expect(r"#lobby>")
    bob = await Peer.connect(server.port)
    try:
        await bob.hello("bob")
        await bob.send(type="nick", nick="rob", ref="n")
        answer = await bob.recv_type("presence")
        while answer.get("ref") != "n":
            answer = await bob.recv_type("presence")
        assert (answer["event"], answer["new"]) == ("nick", "rob")
        await alice.expect(r"bob is now known as rob")
        await until(carl, lambda e: isinstance(e, Renamed) and e == Renamed("bob", "rob"))
    finally:
        await bob.close()
    alice.sendline("/quit")
    assert await alice.wait_exit() == 0
