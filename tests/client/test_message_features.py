"""The client library's side of protocol version 1.1 against a real `chinwag serve`:
replies, changes kept in the client's state, read markers across devices, DM receipts."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from client_events import is_body, until
from conftest import ServerProcess

from chinwag.client import (
    CaughtUp,
    Changed,
    ChatClient,
    Message,
    Reaction,
    ReadMarker,
    Receipt,
)
from chinwag.client.state import Conversation
from chinwag.errors import Forbidden

WAIT = 10.0
LOBBY = Conversation.room("lobby")
DOCS = Path(__file__).parents[2] / "docs" / "client.md"


class Clients:
    """Connected clients with their own config dirs; all closed at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.made: list[ChatClient] = []

    async def open(self, port: int, nick: str, device: str = "", **kwargs: Any) -> ChatClient:
        client = ChatClient(
            "127.0.0.1",
            port,
            nick=nick,
            config_dir=self.tmp_path / "config" / (device or nick),
            seen_delay=0.05,
            **kwargs,
        )
        self.made.append(client)
        await asyncio.wait_for(client.connect(), WAIT)
        return client

    async def close(self) -> None:
        for client in self.made:
            await client.close(timeout=2)


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[Clients]:
    made = Clients(tmp_path)
    yield made
    await made.close()


async def account(clients: Clients, port: int, nick: str, device: str = "") -> ChatClient:
    """A client logged in as a registered account (registered on first use)."""
    try:
        return await clients.open(port, nick, device, password="correct horse")
    except Exception:
        client = await clients.open(port, nick, device)
        await client.register("correct horse")
        return client


async def test_a_reply_and_the_changes_of_a_message_reach_the_clients_state(
    server: ServerProcess, clients: Clients
) -> None:
    alice = await clients.open(server.port, "alice")
    bob = await clients.open(server.port, "bob")
    first = await alice.wait_sent(alice.say("lobby", "the kettle is on"), WAIT)
    await until(bob, is_body("the kettle is on"))
    answer = await bob.wait_sent(bob.say("lobby", "tea please", reply_to=first.id), WAIT)
    got = await until(alice, is_body("tea please"))
    assert isinstance(got[-1], Message) and got[-1].reply_to == first.id

    await alice.edit(first.id, "the kettle boiled, @bob")
    await bob.react(first.id, "🍵")
    await alice.react(first.id, "🍵")
    await bob.react(first.id, "🍵", on=False)
    await bob.react(first.id, "👍")
    await until(bob, lambda e: isinstance(e, Changed) and e.emoji == "👍")
    kept = bob.state.find(first.id)
    assert kept is not None
    assert (kept.body, kept.edited, kept.mentioned) == ("the kettle boiled, @bob", True, True)
    assert kept.reactions == (Reaction("🍵", ("alice",)), Reaction("👍", ("bob",)))

    page = await alice.history("lobby")
    old = {m.id: m for m in page.messages}[first.id]
    assert (old.body, old.edited, old.reactions) == (kept.body, True, kept.reactions)
    assert {m.id: m for m in page.messages}[answer.id].reply_to == first.id

    await alice.delete(first.id)
    await until(bob, lambda e: isinstance(e, Changed) and e.kind == "deleted")
    kept = bob.state.find(first.id)
    assert kept is not None and (kept.body, kept.deleted, kept.reactions) == ("", True, ())
    page = await bob.history("lobby")
    gone = {m.id: m for m in page.messages}[first.id]
    assert (gone.body, gone.deleted) == ("", True)


async def test_a_reply_to_a_bad_id_is_refused_before_it_is_queued(
    server: ServerProcess, clients: Clients
) -> None:
    alice = await clients.open(server.port, "alice")
    with pytest.raises(ValueError, match="positive integer"):
        alice.say("lobby", "hm", reply_to=0)
    assert alice.queued == 0


async def test_read_markers_sync_across_devices_and_count_unread_at_login(
    server: ServerProcess, clients: Clients
) -> None:
    laptop = await account(clients, server.port, "alice", "laptop")
    phone = await account(clients, server.port, "alice", "phone")
    bob = await clients.open(server.port, "bob")
    ids = [(await bob.wait_sent(bob.say("lobby", f"news {i}"), WAIT)).id for i in range(3)]
    await until(laptop, is_body("news 2"))
    await until(phone, is_body("news 2"))
    await laptop.mark_read(ids[1], room="lobby")
    got = await until(phone, lambda e: isinstance(e, ReadMarker))
    assert got[-1] == ReadMarker(ids[1], room="lobby")
    assert phone.state.marker(LOBBY) == ids[1]
    assert laptop.state.marker(LOBBY) == ids[1]

    await phone.close()
    for i in range(3, 5):
        await bob.wait_sent(bob.say("lobby", f"news {i}"), WAIT)
    await until(laptop, is_body("news 4"))
    back = await account(clients, server.port, "alice", "phone")
    caught = await until(back, lambda e: isinstance(e, CaughtUp))
    assert caught[-1].unread == {"lobby": 2}  # type: ignore[union-attr]
    # issue 15: a fresh client learns the marker at login, not when a device next moves it
    assert caught[-1].markers == {"lobby": ids[1]}  # type: ignore[union-attr]
    assert back.state.marker(LOBBY) == ids[1]


async def test_dm_receipts_come_only_when_both_turned_them_on(
    server: ServerProcess, clients: Clients
) -> None:
    alice = await account(clients, server.port, "alice")
    bob = await account(clients, server.port, "bob")
    guest = await clients.open(server.port, "carol")
    with pytest.raises(Forbidden):
        await guest.set_receipts(True)

    await alice.set_receipts(True)
    first = await alice.wait_sent(alice.dm("bob", "one"), WAIT)
    await until(bob, is_body("one"))
    await bob.mark_read(first.id, with_="alice")
    with pytest.raises(TimeoutError):  # bob has not turned them on: nothing comes
        await until(alice, lambda e: isinstance(e, Receipt), timeout=1.0)

    await bob.set_receipts(True)
    second = await alice.wait_sent(alice.dm("bob", "two"), WAIT)
    await until(bob, is_body("two"))  # taking it moves bob's cursor: delivered
    got = await until(alice, lambda e: isinstance(e, Receipt))
    assert got[-1] == Receipt("bob", second.id, "delivered")
    await bob.mark_read(second.id, with_="alice")
    got = await until(alice, lambda e: isinstance(e, Receipt) and e.state == "read")
    assert got[-1] == Receipt("bob", second.id, "read")


def notes_example() -> str:
    """docs/client.md's example of the version 1.1 features (the block with receipts)."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    found = [b for b in blocks if "set_receipts" in b]
    assert len(found) == 1, "docs/client.md has one python example with receipts"
    return str(found[0])


async def test_the_documented_notes_bot_runs(
    server: ServerProcess, clients: Clients, tmp_path: Path
) -> None:
    setup = await clients.open(server.port, "notes")
    await setup.register("notes password")
    await setup.close()
    alice = await account(clients, server.port, "alice")
    await alice.set_receipts(True)
    script = tmp_path / "notes.py"
    script.write_text(notes_example())
    bot = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, str(script), "127.0.0.1", str(server.port), "notes password"],
        env={"CHINWAG_CONFIG_DIR": str(tmp_path / "botcfg"), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        sent = await alice.wait_sent(alice.dm("notes", "buy milk"), WAIT)
        got = await until(alice, lambda e: isinstance(e, Message) and e.sender == "notes")
        answer = got[-1]
        assert isinstance(answer, Message)
        assert (answer.body, answer.reply_to) == ("noted: buy milk", sent.id)
        await alice.edit(sent.id, "buy oat milk")
        stdout = bot.stdout
        assert stdout is not None

        async def printed(wanted: str) -> list[str]:
            lines: list[str] = []
            while wanted not in lines:
                line = await asyncio.wait_for(asyncio.to_thread(stdout.readline), WAIT)
                assert line, f"the bot ended; it printed {lines}"
                lines.append(line)
            return lines

        # Our client took its answer (a "delivered" receipt may come first).
        before = await printed(f"[{sent.id}] is now: buy oat milk\n")
        assert set(before[:-1]) <= {f"alice: delivered up to {answer.id}\n"}
        await alice.mark_read(answer.id, with_="notes")  # both have receipts on
        await printed(f"alice: read up to {answer.id}\n")
    finally:
        bot.kill()
        await asyncio.to_thread(bot.wait, 5)
        if bot.stdout is not None:
            bot.stdout.close()
