"""The bot framework: pure parts, then real bots (child processes) against a real server."""

from __future__ import annotations

import ast
import asyncio
import re
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from bot_harness import DEV, FAST_ARGON, WAIT, BotProcess, Player
from conftest import Peer, ServerProcess

from chinwag.bot import clean_body, parse_command, quote
from chinwag.bot.credentials import Credentials, load_credentials, save_credentials
from chinwag.bot.launcher import connect_address
from chinwag.bot.store import BotDB, Store
from chinwag.client import ChatClient, Message

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src" / "chinwag"
DOCS = HERE.parents[1] / "docs" / "bots.md"

# --- pure parts ----------------------------------------------------------------------------


def test_parse_command_in_dms_and_rooms() -> None:
    def dm(text: str) -> tuple[str, str] | None:
        return parse_command(text, nick="GameBot", prefix="!", in_room=False)

    def room(text: str) -> tuple[str, str] | None:
        return parse_command(text, nick="GameBot", prefix="!", in_room=True)

    assert dm("  PLAY  tictactoe   hard ") == ("play", "tictactoe   hard")
    assert dm("5") == ("5", "") and dm("   ") is None
    assert dm("tell bob\nline two") == ("tell", "bob\nline two")
    assert room("play tictactoe") is None  # room chatter is not for the bot
    assert room("!play ttt") == ("play", "ttt")
    assert room("gamebot: help") == ("help", "")
    assert room("@GAMEBOT scores") == ("scores", "")
    assert room("gamebot, play c4") == ("play", "c4")
    assert room("gamebot is great") is None  # mentioned, not addressed
    assert room("otherbot: help") is None
    assert room("!") is None


def test_replies_are_cleaned_and_quotes_are_short() -> None:
    assert clean_body("a\x00b\x1b[31mc\td\ne\x7f") == "a?b?[31mc\td\ne?"
    long = clean_body("x" * 5000)
    assert len(long) == 4000 and long.endswith("…")
    assert quote("  {0.__class__} %s %n\nsecond line") == "“{0.__class__} %s %n”"
    assert quote("y" * 100, limit=10) == "“yyyyyyyyy…”"
    assert quote("") == "“”"


def test_connect_address_reaches_a_wildcard_listener_over_loopback() -> None:
    assert connect_address("0.0.0.0", 5050) == "127.0.0.1:5050"
    assert connect_address("::", 5050) == "[::1]:5050"
    assert connect_address("192.168.1.4", 1) == "192.168.1.4:1"


def test_store_copies_values_and_rolls_back() -> None:
    store = Store({"a": {"k": '{"n":1}'}})
    value = store.get("a", "k")
    value["n"] = 2  # a copy: the store is unchanged until put()
    assert store.get("a", "k") == {"n": 1}
    store.put("a", "k", {"n": 3})
    store.put("b", "new", [1, "two"])
    store.delete("a", "missing")
    assert sorted(store.changes()) == [("a", "k", '{"n":3}'), ("b", "new", '[1,"two"]')]
    store.rollback()
    assert store.get("a", "k") == {"n": 1} and store.get("b", "new") is None
    assert store.changes() == [] and store.keys("a") == ["k"]
    with pytest.raises(ValueError):
        store.put("a", "bad", float("nan"))
    with pytest.raises(TypeError):
        store.put("a", "bad", object())
    assert ("a", "k") in store and ("a", "bad") not in store


async def test_bot_db_commits_data_replies_and_last_id_together(tmp_path: Path) -> None:
    db = await BotDB.open(tmp_path / "bot.db")
    try:
        rows = await db.commit(
            [("games", "1", '{"x":1}'), ("gone", "k", None)],
            [("dm", "alice", "hello", "tag"), ("say", "lobby", "hi", None)],
            41,
        )
        assert [(r.kind, r.target, r.tag) for r in rows] == [
            ("dm", "alice", "tag"),
            ("say", "lobby", None),
        ]
        db.set_cid_nowait(rows[0].seq, "c-1")
        db.done_nowait(rows[1].seq)
        await db.commit([], [], 40)  # the last id never goes back
        await db.flush()
        data, pending, last_id = await db.load()
        assert data == {"games": {"1": '{"x":1}'}}
        assert [(r.target, r.cid) for r in pending] == [("alice", "c-1")]
        assert last_id == 41
    finally:
        await db.close()
        await db.close()  # idempotent


def test_credentials_are_private_and_kept_per_nick(tmp_path: Path) -> None:
    first = load_credentials(tmp_path, "GameBot")
    assert not first.registered and len(first.password) >= 24
    save_credentials(tmp_path, Credentials("GameBot", first.password, True))
    save_credentials(tmp_path, Credentials("other", "pw-other-123"))
    path = tmp_path / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_credentials(tmp_path, "gamebot")  # compared casefolded
    assert again == Credentials("gamebot", first.password, True)
    assert load_credentials(tmp_path, "other").password == "pw-other-123"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="damaged"):
        load_credentials(tmp_path, "gamebot")


def test_bots_import_only_the_client_library() -> None:
    """DESIGN.md: bots are clients. chinwag.bot uses chinwag.client (and the client side of
    chinwag.net, as ``chinwag chat`` does), never core, server or storage."""
    allowed = (
        "chinwag.bot",
        "chinwag.client",
        "chinwag.errors",
        "chinwag.net.connect",
        "chinwag.net.pins",
    )
    wrong = []
    for path in (SRC / "bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.startswith("chinwag") and not name.startswith(allowed):
                    wrong.append(f"{path.relative_to(SRC)} imports {name}")
    assert wrong == []


# --- real bots -----------------------------------------------------------------------------


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "server", FAST_ARGON).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[list[ChatClient]]:
    made: list[ChatClient] = []
    yield made
    for client in made:
        await client.close(timeout=2)


async def connect(
    made: list[ChatClient], tmp_path: Path, port: int, nick: str, password: str | None = None
) -> ChatClient:
    client = ChatClient(
        "127.0.0.1",
        port,
        nick=nick,
        password=password,
        config_dir=tmp_path / "clients" / nick,
        reconnect_min=0.1,
        reconnect_max=1.0,
    )
    made.append(client)
    await asyncio.wait_for(client.connect(), WAIT)
    return client


async def who_is_bot(port: int, room: str = "lobby") -> dict[str, bool]:
    peer = await Peer.connect(port)
    try:
        await peer.hello("watcher")
        if room != "lobby":
            await peer.send(type="join", room=room)
            await peer.recv_type("ok")
        await peer.send(type="who", room=room)
        reply = await peer.recv_type("who")
        return {u["nick"]: u.get("bot", False) for u in reply["users"]}
    finally:
        await peer.close()


async def room_reply(client: ChatClient, room: str, sender: str) -> Message:
    async with asyncio.timeout(WAIT):
        while True:
            event = await client.next_event()
            if isinstance(event, Message) and event.room == room and event.sender == sender:
                return event


async def test_a_bot_is_a_registered_bot_account_with_commands_state_and_rooms(
    srv: ServerProcess, tmp_path: Path, clients: list[ChatClient]
) -> None:
    bot = BotProcess(
        srv.port, tmp_path / "samplebot", command=[sys.executable, *DEV, str(HERE / "samplebot.py")]
    )
    bot.start()
    try:
        assert await who_is_bot(srv.port, "bots") == {"samplebot": True, "watcher": False}
        alice = Player(await connect(clients, tmp_path, srv.port, "alice"), "samplebot")
        assert await alice.ask("count") == "count 1"
        assert await alice.ask("COUNT please") == "count 2"  # the command word in any case
        help_text = await alice.ask("help")
        assert help_text.startswith("A bot for tests.") and "count: how often" in help_text
        # A failing handler changes nothing and says so.
        assert "went wrong on my side" in await alice.ask("boom")
        assert await alice.ask("peek") == "x is None"
        assert await alice.ask("count") == "count 3"
        assert "don't know the command “xyzzy”" in await alice.ask("xyzzy {0} %s")
        assert await alice.ask("say {0.__class__} %s %(x)s") == "{0.__class__} %s %(x)s"
        assert await alice.ask("private") == "a secret"

        # In a room: only prefixed or addressed lines, answered in the room.
        client = alice.client
        await client.join("bots")
        client.say("bots", "count is a nice word")  # chatter: ignored
        client.say("bots", "samplebot: count")
        assert (await room_reply(client, "bots", "samplebot")).body == "count 1"  # own state
        client.say("bots", "!private")
        reply = await room_reply(client, "bots", "samplebot")
        assert reply.body == "Send me that by direct message: /dm samplebot private"

        # Flood control: 30 replies at once pass the server's 10/s limit, in order.
        alice.send("burst 30")
        got = [(await alice.next_dm()).body for _ in range(30)]
        assert got == [f"burst {i}" for i in range(30)]
        assert "ticking True" in await alice.ask("stats")

        # Two bots answering each other's "I don't know" would never stop: after ten
        # answers in a row to messages it did not understand, a bot goes quiet.
        for _ in range(12):
            alice.send("nonsense")
        answers = await alice.quiet(1.5)
        assert [m.body[:14] for m in answers] == ["I don't know t"] * 10
        assert await alice.ask("echo back") == "back"  # understood: a new streak
        assert "don't know" in await alice.ask("nonsense")

        # One data directory, one bot: a second one refuses to start.
        second = await asyncio.to_thread(
            subprocess.run,
            [*bot.command, f"127.0.0.1:{srv.port}", "--data", str(bot.data)],
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert second.returncode == 1 and "another bot is running" in second.stderr

        # State, data and hooks survive a restart.
        assert bot.stop() == 0
        bot.start()
        assert await alice.ask("count") == "count 4"
        assert await alice.ask("stats") == "starts 2, ticking True"
        assert "registered as a bot account" in bot.log()
        assert bot.log().count("registered as a bot account") == 1
    finally:
        bot.kill()


async def test_messages_sent_while_the_bot_is_down_are_handled_when_it_returns(
    srv: ServerProcess, tmp_path: Path, clients: list[ChatClient]
) -> None:
    bot = BotProcess(
        srv.port, tmp_path / "samplebot", command=[sys.executable, *DEV, str(HERE / "samplebot.py")]
    )
    bot.start()
    try:
        alice = Player(await connect(clients, tmp_path, srv.port, "alice"), "samplebot")
        assert await alice.ask("count") == "count 1"
        assert bot.stop() == 0
        alice.send("count")
        alice.send("echo while you were away")
        await alice.client.wait_flushed(WAIT)  # stored for the bot's backlog
        bot.start()
        assert (await alice.next_dm()).body == "count 2"
        assert (await alice.next_dm()).body == "while you were away"
        bot.kill()  # kill -9: nothing is handled twice after the restart
        bot.start()
        assert await alice.ask("count") == "count 3"
        assert await alice.quiet(0.3) == []
    finally:
        bot.kill()


def _doc_bot(tmp_path: Path) -> Path:
    text = DOCS.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    [code] = [b for b in blocks if "Bot(" in b]
    assert len([line for line in code.splitlines() if line.strip()]) <= 20  # as the title says
    path = tmp_path / "tellbot.py"
    path.write_text(code)
    return path


async def test_the_documented_bot_runs(
    srv: ServerProcess, tmp_path: Path, clients: list[ChatClient]
) -> None:
    bob = await connect(clients, tmp_path, srv.port, "bob")
    await bob.register("bob's password")
    await bob.close()
    bot = BotProcess(
        srv.port, tmp_path / "tellbot", command=[sys.executable, *DEV, str(_doc_bot(tmp_path))]
    )
    bot.start()
    try:
        alice = Player(await connect(clients, tmp_path, srv.port, "alice"), "tellbot")
        assert "tell NICK TEXT" in await alice.ask("help")
        assert (
            await alice.ask("tell bob see you at {eight}")
            == "I will tell bob. That makes 1 from you."
        )
        assert await alice.ask("tell bob") == "Send tell NICK TEXT."
        assert "That makes 2" in await alice.ask("tell nobody_here hello")
        bounced = await alice.expect("I could not reach nobody_here")
        assert bounced.body.startswith("I could not reach nobody_here: ")
        # bob was away: the message is in his backlog.
        bob = await connect(clients, tmp_path, srv.port, "bob", "bob's password")
        message = await Player(bob, "tellbot").next_dm()
        assert message.replay and message.body == "alice asked me to tell you: see you at {eight}"
        assert await who_is_bot(srv.port) == {
            "alice": False,
            "bob": False,
            "tellbot": True,
            "watcher": False,
        }
    finally:
        bot.kill()
