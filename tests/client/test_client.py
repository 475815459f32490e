"""The client library against real `chinwag serve` processes (no mocks of our own parts)."""

from __future__ import annotations

import asyncio
import collections
import json
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
    ChatClient,
    ClientClosed,
    Event,
    Message,
    Presence,
    SendFailed,
    Sent,
    Status,
    Welcome,
)
from chinwag.errors import (
    BadBody,
    BadPassword,
    BadRoom,
    Forbidden,
    NoSuchUser,
    NotMember,
    PasswordRequired,
    WeakPassword,
)

WAIT = 10.0
FAST_ARGON = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}
DOCS = Path(__file__).parents[2] / "docs" / "client.md"


class Clients:
    """Makes connected clients with their own config dirs; closes them all at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.made: list[ChatClient] = []

    def new(self, port: int, nick: str, **kwargs: Any) -> ChatClient:
        kwargs.setdefault("config_dir", self.tmp_path / "config" / nick)
        kwargs.setdefault("reconnect_min", 0.1)
        kwargs.setdefault("reconnect_max", 1.0)
        client = ChatClient("127.0.0.1", port, nick=nick, **kwargs)
        self.made.append(client)
        return client

    async def open(self, port: int, nick: str, **kwargs: Any) -> ChatClient:
        client = self.new(port, nick, **kwargs)
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


def start_server(tmp_path: Path, name: str, **settings: Any) -> ServerProcess:
    return ServerProcess(tmp_path / name, {**FAST_ARGON, **settings}).start()


async def drain(client: ChatClient, seconds: float = 0.3) -> list[Event]:
    """Events that arrive within the next ``seconds``."""
    seen: list[Event] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while (left := deadline - loop.time()) > 0:
            seen.append(await client.next_event(timeout=left))
    except TimeoutError:
        pass
    return seen


def bodies(events: list[Event], **match: Any) -> list[str]:
    return [
        e.body
        for e in events
        if isinstance(e, Message) and all(getattr(e, k) == v for k, v in match.items())
    ]


async def room_history(client: ChatClient, room: str) -> list[Message]:
    """Every message of a room, oldest first, over as many pages as it takes."""
    out: list[Message] = []
    before = None
    while True:
        page = await client.history(room, before=before, limit=200)
        out = list(page.messages) + out
        if not page.more or not page.messages:
            return out
        before = page.messages[0].id


# --- chatting ----------------------------------------------------------------------------


async def test_two_clients_chat_in_lobby_rooms_and_dms(
    server: ServerProcess, clients: Clients
) -> None:
    alice = await clients.open(server.port, "alice")
    bob = await clients.open(server.port, "bob")
    carol = await clients.open(server.port, "carol")

    cid = alice.say("lobby", "hello all")
    sent = await alice.wait_sent(cid, WAIT)
    got = await until(bob, is_body("hello all"))
    [msg] = [e for e in got if isinstance(e, Message)]
    assert (msg.id, msg.sender, msg.room, msg.own, msg.replay) == (
        sent.id,
        "alice",
        "lobby",
        False,
        False,
    )
    assert msg.ts == sent.ts

    await alice.join("games")
    await bob.join("Games")  # rooms are case-insensitive
    assert "games" in alice.rooms and "games" in bob.rooms
    assert [u.nick for u in await bob.who("games")] == ["alice", "bob"]
    assert {r.name: r.online for r in await carol.list_rooms()}["games"] == 2
    await until(alice, lambda e: isinstance(e, Presence) and e.nick == "bob" and e.room == "games")

    bob.say("games", "in games")
    bob.dm("alice", "psst, alice")
    got = await until(alice, is_body("psst, alice"))
    assert bodies(got, room="games") == ["in games"]
    [dm] = [e for e in got if isinstance(e, Message) and e.is_dm]
    assert (dm.sender, dm.to, dm.peer, dm.own) == ("bob", "alice", "bob", False)
    own = await until(bob, is_body("psst, alice"))
    [echo] = [e for e in own if isinstance(e, Message) and e.is_dm]
    assert echo.own and echo.peer == "alice" and echo.cid is not None

    # carol is in neither games nor the DM: she sees the lobby message only.
    later = carol.say("lobby", "carol was here")
    await carol.wait_sent(later, WAIT)
    seen = await until(carol, is_body("carol was here"))
    assert bodies(seen) == ["hello all", "carol was here"]
    with pytest.raises(NotMember):
        await carol.history("games")
    page = await carol.history(with_="alice")
    assert page.messages == ()
    assert [m.body for m in (await alice.history(with_="bob")).messages] == ["psst, alice"]


async def test_refusals_raise_the_matching_errors(server: ServerProcess, clients: Clients) -> None:
    alice = await clients.open(server.port, "alice")
    with pytest.raises(BadRoom):
        await alice.join("no spaces!")
    with pytest.raises(Forbidden):
        await alice.leave("lobby")
    with pytest.raises(NotMember):
        await alice.who("games")
    with pytest.raises(NoSuchUser):
        await alice.history(with_="nobody")
    with pytest.raises(WeakPassword):
        await alice.register("short")
    with pytest.raises(Forbidden):
        await alice.passwd("old-password", "new-password")
    with pytest.raises(BadBody):
        alice.say("lobby", "")
    with pytest.raises(BadBody):
        alice.say("lobby", "x" * 4001)
    assert alice.connected  # refusals never close the connection


async def test_refused_messages_leave_the_outbox_with_an_event(
    server: ServerProcess, clients: Clients
) -> None:
    alice = await clients.open(server.port, "alice")
    lost = alice.say("games", "not a member")
    nobody = alice.dm("nobody", "hello?")
    control = alice.say("lobby", "bell\x07")
    fine = alice.say("lobby", "fine")
    with pytest.raises(NotMember):
        await alice.wait_sent(lost, WAIT)
    with pytest.raises(NoSuchUser):
        await alice.wait_sent(nobody, WAIT)
    with pytest.raises(BadBody):
        await alice.wait_sent(control, WAIT)
    assert isinstance(await alice.wait_sent(fine, WAIT), Sent)
    assert alice.queued == 0
    events = await until(alice, is_body("fine"))
    failed = [e for e in events if isinstance(e, SendFailed)]
    assert [(f.cid, f.error.code, f.target) for f in failed] == [
        (lost, "not_member", "games"),
        (nobody, "no_such_user", "nobody"),
        (control, "bad_body", "lobby"),
    ]


# --- accounts, backlog, cursor -----------------------------------------------------------


async def test_login_asks_for_the_password_of_a_registered_nick(
    server: ServerProcess, clients: Clients
) -> None:
    alice = await clients.open(server.port, "alice")
    await alice.register("correct horse")
    assert alice.account
    await alice.close()

    again = clients.new(server.port, "alice")
    with pytest.raises(PasswordRequired):
        await again.connect()
    with pytest.raises(BadPassword):
        await again.connect(password="wrong password")
    welcome = await again.connect(password="correct horse")
    assert welcome.account and welcome.nick == "alice"


async def test_backlog_after_logging_back_in_nothing_doubled(
    server: ServerProcess, clients: Clients
) -> None:
    alice = await clients.open(server.port, "Alice")
    await alice.register("alice-password")
    await alice.join("games")
    await alice.close()  # bye: the cursor moves to what was delivered

    bob = await clients.open(server.port, "bob")
    await bob.join("games")
    for i in range(3):
        bob.dm("alice", f"dm {i}")
    bob.say("games", "in games")
    bob.say("lobby", "in lobby")
    await bob.wait_flushed(WAIT)

    back = await clients.open(server.port, "alice", password="alice-password")
    events = await until(back, lambda e: isinstance(e, CaughtUp))
    assert isinstance(events[0], Welcome) and events[0].account and events[0].nick == "Alice"
    assert set(events[0].rooms) == {"lobby", "games"}
    replayed = [e for e in events if isinstance(e, Message)]
    assert [m.body for m in replayed] == ["dm 0", "dm 1", "dm 2", "in games", "in lobby"]
    assert all(m.replay for m in replayed)
    caught_up = events[-1]
    assert isinstance(caught_up, CaughtUp)
    assert caught_up.missed == 5 and not caught_up.resumed
    assert dict(caught_up.dms) == {"bob": 3}
    assert dict(caught_up.rooms) == {"games": 1, "lobby": 1}

    bob.dm("alice", "live now")
    live = await until(back, is_body("live now"))
    rest = await drain(back)
    everything = replayed + [e for e in live + rest if isinstance(e, Message)]
    assert len({m.id for m in everything}) == len(everything) == 6
    assert not next(m for m in everything if m.body == "live now").replay


async def test_seen_moves_the_cursor_and_without_it_delivery_repeats(
    server: ServerProcess, clients: Clients
) -> None:
    setup = await clients.open(server.port, "alice")
    await setup.register("alice-password")
    await setup.close()
    bob = await clients.open(server.port, "bob")

    # A client that never sends seen and then crashes: the messages come again.
    forgetful = await clients.open(server.port, "alice", password="alice-password", seen_delay=3600)
    bob.dm("alice", "first")
    await until(forgetful, is_body("first"))
    await forgetful.abort()
    again = await clients.open(server.port, "alice", password="alice-password", seen_delay=0.05)
    events = await until(again, lambda e: isinstance(e, CaughtUp))
    assert bodies(events) == ["first"]

    # This one hands "second" to us, sends seen, then crashes: nothing comes again.
    bob.dm("alice", "second")
    await until(again, is_body("second"))
    await asyncio.sleep(0.5)  # > seen_delay: seen went out
    await again.abort()
    third = await clients.open(server.port, "alice", password="alice-password")
    events = await until(third, lambda e: isinstance(e, CaughtUp))
    assert bodies(events) == []
    caught_up = events[-1]
    assert isinstance(caught_up, CaughtUp) and caught_up.missed == 0


async def test_device_id_is_stable_across_clients_with_one_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = ChatClient("127.0.0.1", 1, nick="a", config_dir=tmp_path / "cfg")
    two = ChatClient("127.0.0.1", 1, nick="b", config_dir=tmp_path / "cfg")
    other = ChatClient("127.0.0.1", 1, nick="c", config_dir=tmp_path / "elsewhere")
    assert one.device == two.device != other.device
    assert (tmp_path / "cfg" / "device").read_text().strip() == one.device
    monkeypatch.setenv("CHINWAG_CONFIG_DIR", str(tmp_path / "cfg"))
    assert ChatClient("127.0.0.1", 1, nick="d").device == one.device


async def test_each_device_catches_up_on_its_own(
    server: ServerProcess, clients: Clients, tmp_path: Path
) -> None:
    desk = await clients.open(server.port, "alice", config_dir=tmp_path / "desk")
    await desk.register("alice-password")
    await desk.close()
    phone = await clients.open(
        server.port, "alice", password="alice-password", config_dir=tmp_path / "phone"
    )
    await phone.close()
    bob = await clients.open(server.port, "bob")
    bob.dm("alice", "for both devices")
    await bob.wait_flushed(WAIT)

    desk = await clients.open(
        server.port, "alice", password="alice-password", config_dir=tmp_path / "desk"
    )
    assert bodies(await until(desk, lambda e: isinstance(e, CaughtUp))) == ["for both devices"]
    await desk.close()
    phone = await clients.open(
        server.port, "alice", password="alice-password", config_dir=tmp_path / "phone"
    )
    assert bodies(await until(phone, lambda e: isinstance(e, CaughtUp))) == ["for both devices"]


# --- the outbox across a server crash ---------------------------------------------------


@pytest.mark.parametrize("account", [False, True], ids=["guest", "account"])
async def test_outbox_survives_kill_9_every_message_exactly_once(
    tmp_path: Path, clients: Clients, account: bool
) -> None:
    srv = start_server(tmp_path, "srv", rate_per_second=10_000, rate_burst=10_000)
    try:
        alice = await clients.open(srv.port, "alice")
        if account:
            await alice.register("alice-password")
        await alice.join("games")

        # A burst, and kill -9 as soon as the first ack is in: some acked, some
        # in flight (stored or not), most not sent yet.
        burst = [f"burst {i}" for i in range(300)]
        cids = [alice.say("games", body) for body in burst]
        await until(alice, lambda e: isinstance(e, Sent))
        srv.kill()
        statuses = await until(alice, lambda e: isinstance(e, Status) and e.state == "reconnecting")
        status = statuses[-1]
        assert isinstance(status, Status) and status.retry_in is not None
        assert 0 < status.queued <= 300
        assert not alice.connected

        # Queued while the server is down.
        down = [f"while down {i}" for i in range(20)]
        cids += [alice.say("games", body) for body in down]
        cids.append(alice.dm("alice", "note to self"))
        await asyncio.sleep(0.3)
        srv.start()  # same port

        events = await until(alice, lambda e: isinstance(e, Welcome) and e.resumed, timeout=20)
        await asyncio.wait_for(alice.wait_flushed(), 30)
        acks = [await alice.wait_sent(cid, WAIT) for cid in cids]
        assert len({a.id for a in acks}) == len(cids)  # one id each, none shared
        assert "games" in alice.rooms  # a guest takes its rooms back

        reader = await clients.open(srv.port, "reader")
        await reader.join("games")
        stored = [m.body for m in await room_history(reader, "games")]
        expected = burst + down
        assert collections.Counter(stored) == collections.Counter(expected)
        assert stored == expected  # and in the order they were queued
        own = [m for m in (await alice.history(with_="alice")).messages]
        assert [m.body for m in own] == ["note to self"]

        # What alice was handed holds no message twice.
        events += await drain(alice, 1.0)
        ids = [e.id for e in events if isinstance(e, Message)]
        assert len(ids) == len(set(ids))
    finally:
        srv.kill()


async def test_duplicates_replayed_after_a_reconnect_are_dropped(
    tmp_path: Path, clients: Clients
) -> None:
    srv = start_server(tmp_path, "srv")
    try:
        setup = await clients.open(srv.port, "alice")
        await setup.register("alice-password")
        await setup.close()
        # seen is never sent, so the server replays everything after a crash.
        alice = await clients.open(srv.port, "alice", password="alice-password", seen_delay=3600)
        bob = await clients.open(srv.port, "bob")
        for i in range(3):
            bob.say("lobby", f"m{i}")
        first = await until(alice, is_body("m2"))
        assert bodies(first) == ["m0", "m1", "m2"]

        srv.kill()
        await until(alice, lambda e: isinstance(e, Status) and e.state == "reconnecting")
        srv.start()
        events = await until(alice, lambda e: isinstance(e, CaughtUp), timeout=20)
        caught_up = events[-1]
        assert isinstance(caught_up, CaughtUp) and caught_up.resumed
        assert caught_up.missed >= 3  # the server did replay them...
        assert bodies(events) == []  # ...and the client dropped them

        await until(bob, lambda e: isinstance(e, Welcome) and e.resumed, timeout=20)
        bob.say("lobby", "m3")
        later = await until(alice, is_body("m3"))
        assert bodies(later) == ["m3"]
    finally:
        srv.kill()


async def test_rate_limited_messages_are_resent_after_the_wait(
    tmp_path: Path, clients: Clients
) -> None:
    srv = start_server(tmp_path, "srv", rate_per_second=20, rate_burst=3)
    try:
        alice = await clients.open(srv.port, "alice")
        sent = [f"quick {i}" for i in range(30)]
        for body in sent:
            alice.say("lobby", body)
        await asyncio.wait_for(alice.wait_flushed(), 20)
        stored = [m.body for m in await room_history(alice, "lobby")]
        assert stored == sent
        events = await drain(alice)
        assert not [e for e in events if isinstance(e, SendFailed)]
    finally:
        srv.kill()


# --- keeping the connection alive --------------------------------------------------------


async def test_server_pings_are_answered(tmp_path: Path, clients: Clients) -> None:
    # pong_timeout < idle_timeout: see the report on the server's idle check.
    srv = start_server(tmp_path, "srv", idle_timeout=0.4, pong_timeout=0.2)
    try:
        alice = await clients.open(srv.port, "alice", keepalive=3600)
        events = await drain(alice, 2.5)  # several ping rounds
        assert not [e for e in events if isinstance(e, Status) and e.state != "connected"]
        assert alice.connected
        await alice.wait_sent(alice.say("lobby", "still here"), WAIT)
    finally:
        srv.kill()


async def test_a_silent_server_is_detected_and_left(clients: Clients) -> None:
    """A peer that stops answering (not our server: a stub that ignores pings)."""
    hellos = 0

    async def stub(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hellos
        while line := await reader.readline():
            if json.loads(line)["type"] == "hello":
                hellos += 1
                welcome = {
                    "type": "welcome",
                    "proto": 1,
                    "nick": "alice",
                    "account": False,
                    "server": {"name": "stub", "version": "0"},
                    "motd": "",
                    "rooms": ["lobby"],
                }
                writer.write(json.dumps(welcome).encode() + b"\n")
                writer.write(
                    b'{"type":"caught_up","missed":0,"rooms":{},"dms":{},"truncated":false}\n'
                )
        writer.close()

    listener = await asyncio.start_server(stub, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        alice = await clients.open(port, "alice", keepalive=0.3, keepalive_timeout=0.3)
        events = await until(alice, lambda e: isinstance(e, Status) and e.state == "reconnecting")
        assert "answering" in (events[-1].error or "")  # type: ignore[union-attr,operator]
        await until(alice, lambda e: isinstance(e, Welcome) and e.resumed)
        assert hellos == 2
    finally:
        listener.close()


async def test_a_final_refusal_while_reconnecting_closes_the_client(
    tmp_path: Path, clients: Clients
) -> None:
    srv = start_server(tmp_path, "srv")
    try:
        alice = await clients.open(srv.port, "alice")
        await alice.register("alice-password")
        other = await clients.open(
            srv.port, "alice", password="alice-password", config_dir=tmp_path / "other"
        )
        await other.passwd("alice-password", "changed-password")
        srv.kill()
        srv.start()
        events = await until(alice, lambda e: isinstance(e, Status) and e.state == "offline", 20)
        assert "bad_password" in (events[-1].error or "")  # type: ignore[union-attr,operator]
        assert alice.closed
        with pytest.raises(ClientClosed):
            await alice.next_event(timeout=1)
    finally:
        srv.kill()


async def test_close_says_bye_and_ends_the_event_stream(
    server: ServerProcess, clients: Clients
) -> None:
    alice = await clients.open(server.port, "alice")
    cid = alice.say("lobby", "last words")
    await alice.close()  # waits for the ack first
    assert (await alice.wait_sent(cid)).id > 0
    events = [e async for e in alice.events()]
    assert isinstance(events[-1], Status) and events[-1].state == "offline"
    with pytest.raises(RuntimeError):
        alice.say("lobby", "too late")


# --- the documented example --------------------------------------------------------------


def _doc_example() -> str:
    text = DOCS.read_text()
    match = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/client.md has a python example"
    return match.group(1)


def test_the_documented_example_is_about_fifteen_lines() -> None:
    lines = [line for line in _doc_example().splitlines() if line.strip()]
    assert 10 <= len(lines) <= 20


async def test_the_documented_example_runs(
    server: ServerProcess, clients: Clients, tmp_path: Path
) -> None:
    script = tmp_path / "example.py"
    script.write_text(_doc_example())
    bot = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, str(script), "127.0.0.1", str(server.port)],
        env={"CHINWAG_CONFIG_DIR": str(tmp_path / "botcfg"), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        alice = await clients.open(server.port, "alice")
        await alice.join("echo")
        async with asyncio.timeout(WAIT):
            while "echobot" not in [u.nick for u in await alice.who("echo")]:
                await asyncio.sleep(0.1)
        alice.say("echo", "hi bot")
        reply = await until(alice, lambda e: isinstance(e, Message) and e.sender == "echobot")
        assert bodies(reply, sender="echobot") == ["alice said: hi bot"]
        alice.say("echo", "!quit")
        assert await asyncio.to_thread(bot.wait, WAIT) == 0
    finally:
        if bot.poll() is None:
            bot.kill()
        bot.wait(5)
        assert bot.stdout is not None
        bot.stdout.close()


async def test_register_as_bot_shows_in_who(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "srv", {"argon2_memory_kib": 8192})
    srv.start()
    try:
        bot = await ChatClient.open("127.0.0.1", srv.port, nick="robo", config_dir=tmp_path / "c1")
        await bot.register("robot password", bot=True)
        human = await ChatClient.open(
            "127.0.0.1", srv.port, nick="human", config_dir=tmp_path / "c2"
        )
        users = {u.nick: u for u in await human.who("lobby")}
        assert users["robo"].bot is True and users["robo"].account is True
        assert users["human"].bot is False
        await bot.close()
        await human.close()
    finally:
        srv.kill()
