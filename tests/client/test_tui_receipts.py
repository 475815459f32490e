"""Issue 15 in the terminal client: stored DM receipts shown after a restart, and the
receipts setting read back."""

from __future__ import annotations

from client_events import is_body, until
from conftest import ServerProcess
from test_tui import WAIT, Harness, harness

from chinwag.client import Receipt

__all__ = ["harness"]  # the fixture, imported for pytest


async def test_a_restarted_terminal_shows_how_far_its_dms_got(
    server: ServerProcess, harness: Harness
) -> None:
    alice = await harness.client(server.port, "alice")
    await alice.register("alice-password")
    await alice.set_receipts(True)
    bob = await harness.client(server.port, "bob")
    await bob.register("bob-password")
    await bob.set_receipts(True)
    read = await alice.wait_sent(alice.dm("bob", "read this"), WAIT)
    got = await alice.wait_sent(alice.dm("bob", "only got this"), WAIT)
    await until(bob, is_body("only got this"))
    await until(alice, lambda e: e == Receipt("bob", got.id, "delivered"))
    await bob.mark_read(read.id, with_="alice")
    await until(alice, lambda e: e == Receipt("bob", read.id, "read"))
    await alice.close()

    term = harness.tty(server.port, "alice")
    await term.expect(r"password for alice: ")
    term.sendline("alice-password")
    await term.expect(r"as alice \(account\)")
    term.sendline("/receipts")
    await term.expect(r"DM receipts are on: /receipts off")
    term.sendline("/dm bob")
    await term.expect(r"talking to @bob")
    term.sendline("/history")
    await term.expect(r"<alice> read this  ✓✓\r?\n")
    await term.expect(r"<alice> only got this  ✓\r?\n")
    term.sendline("/quit")
    assert await term.wait_exit() == 0
