"""Blocks from the terminal client and the client library (issue 16)."""

from __future__ import annotations

from client_events import is_body, until
from conftest import ServerProcess
from test_tui import WAIT, Harness, harness

__all__ = ["harness"]  # the fixture, imported for pytest


async def test_block_blocks_and_unblock_from_the_terminal_and_the_library(
    server: ServerProcess, harness: Harness
) -> None:
    bob = await harness.client(server.port, "bob")
    carol = await harness.client(server.port, "carol")
    alice = harness.tty(server.port, "alice")
    await alice.expect(r"#lobby>")
    alice.sendline("/block bob")
    await alice.expect(r"you will see nothing more from bob")
    await bob.wait_sent(bob.say("lobby", "bob was here"), WAIT)
    await bob.wait_sent(bob.dm("alice", "bob whispers"), WAIT)
    await carol.wait_sent(carol.say("lobby", "carol marker"), WAIT)
    await alice.expect(r"<carol> carol marker")
    assert "bob was here" not in alice.text and "bob whispers" not in alice.text
    alice.sendline("/blocks")
    await alice.expect(r"you block: bob")
    alice.sendline("/block alice")
    await alice.expect(r"you cannot block yourself")
    alice.sendline("/unblock bob")
    await alice.expect(r"you will see what bob sends from now on")
    await bob.wait_sent(bob.say("lobby", "bob again"), WAIT)
    await alice.expect(r"<bob> bob again")
    alice.sendline("/blocks")
    await alice.expect(r"you block: nobody")

    await carol.block("Bob")
    assert await carol.blocks() == ["bob"]
    await bob.wait_sent(bob.say("lobby", "unseen by carol"), WAIT)
    await carol.unblock("bob")
    assert await carol.blocks() == []
    await bob.wait_sent(bob.say("lobby", "seen by carol"), WAIT)
    got = await until(carol, is_body("seen by carol"))
    assert not [e for e in got if getattr(e, "body", "") == "unseen by carol"]
    alice.sendline("/quit")
    assert await alice.wait_exit() == 0
