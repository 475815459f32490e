"""The game bot end to end: a real server, the real bot process, ChatClient players."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from bot_harness import (
    FAST_ARGON,
    GAMES_CMD,
    WAIT,
    BotProcess,
    Player,
    board_of,
    ttt_cells,
    until,
)
from conftest import ServerProcess

from chinwag.client import ChatClient

SIMULTANEOUS = 50
INVITE_CMD = [sys.executable, "-m", "chinwag", "invite", "--plain"]


class Players:
    """Makes ChatClient players (own config dirs); closes them all at the end."""

    def __init__(self, tmp_path: Path, port: int) -> None:
        self.tmp_path = tmp_path
        self.port = port
        self.made: list[ChatClient] = []

    async def open(self, nick: str, password: str | None = None, register: bool = False) -> Player:
        client = ChatClient(
            "127.0.0.1",
            self.port,
            nick=nick,
            password=None if register else password,
            config_dir=self.tmp_path / "players" / nick,
            reconnect_min=0.1,
            reconnect_max=1.0,
        )
        self.made.append(client)
        await asyncio.wait_for(client.connect(), WAIT)
        if register:
            assert password is not None
            await client.register(password)
        return Player(client)

    async def close(self) -> None:
        for client in self.made:
            await client.close(timeout=2)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, BotProcess]]:
    """One server and one game bot for the tests that need nothing special (own nicks each)."""
    base = tmp_path_factory.mktemp("gamebot")
    server = ServerProcess(base / "server", FAST_ARGON).start()
    bot = BotProcess(server.port, base / "bot", "--seed", "7")
    try:
        bot.start()
        yield server, bot
    finally:
        bot.kill()
        server.kill()


@pytest.fixture
async def players(
    tmp_path: Path, shared: tuple[ServerProcess, BotProcess]
) -> AsyncIterator[Players]:
    made = Players(tmp_path, shared[0].port)
    yield made
    await made.close()


async def play_ttt_randomly(player: Player, first: str, rng: random.Random) -> str:
    """Play random legal squares until the game is over; return the last message."""
    body = first
    while "Game over" not in body:
        cells = ttt_cells(body)
        square = rng.choice([i for i, c in enumerate(cells) if c == "."])
        before = cells.count(".")
        body = await player.ask(str(square + 1))
        after = ttt_cells(body)
        assert after[square] == "X"
        assert after.count(".") in (before - 1, before - 2)  # ours, and maybe the bot's
    return body


# --- against the bot -----------------------------------------------------------------------


async def test_help_and_a_full_tictactoe_game(players: Players) -> None:
    alice = await players.open("alice_ttt")
    text = await alice.ask("help", "tictactoe", "connect4", "hangman", "guess", "rps")
    assert "rock, paper, scissors" in text and "tic-tac-toe" in text  # not just "rps"
    assert "play GAME" in text and "challenge NICK GAME" in text and "```" in text
    start = await alice.ask("play tictactoe", "New game: tic-tac-toe vs gamebot (easy)")
    assert "You play X" in start and "your move in tictactoe vs gamebot" in start
    assert board_of(start) == " 1 | 2 | 3\n---+---+---\n 4 | 5 | 6\n---+---+---\n 7 | 8 | 9"
    last = await play_ttt_randomly(alice, start, random.Random(1))
    assert re.search(r"Game over: (you win!|gamebot wins\.|a draw\.)", last)
    assert "You are not in a game" in await alice.ask("board")
    scores = await alice.ask("scores tictactoe", "Leaderboard, tictactoe")
    assert "alice_ttt" in board_of(scores)


async def test_hard_mode_never_loses_over_the_wire(players: Players) -> None:
    rng = random.Random(2026)
    player = await players.open("hard_tester")
    results = []
    for _ in range(12):
        start = await player.ask("play ttt hard", "(hard)")
        results.append(await play_ttt_randomly(player, start, rng))
    assert not any("you win" in r for r in results)
    assert any("gamebot wins" in r for r in results)


async def test_illegal_and_nonsense_moves_change_nothing(players: Players) -> None:
    alice = await players.open("alice_bad")
    assert "You are not in a game" in await alice.ask("5")
    reply = await alice.ask("{0.__class__.__mro__} %s %(x)s ```")
    assert reply.startswith("I don't know “{0.__class__.__mro__} %s %(x)s ```”")
    assert "I don't know the game “chess”" in await alice.ask("play chess")
    assert "levels: easy, hard" in await alice.ask("play tictactoe impossible")
    start = await alice.ask("play tictactoe hard")
    moved = await alice.ask("5")
    board = ttt_cells(moved)
    taken = str(board.index("O") + 1)
    for bad, why in [
        ("5", "Square 5 is taken."),
        (taken, f"Square {taken} is taken."),
        ("0", "That is not a square"),
        ("banana", "That is not a square"),
        ("{0}", "That is not a square"),
        ("%s%s%s", "That is not a square"),
        ("1 2", "That is not a square"),
        ("٣", "That is not a square"),
    ]:
        reply = await alice.ask(bad)
        assert reply.startswith(why), (bad, reply)
        assert "Now it's your move in tictactoe vs gamebot" in reply
    assert ttt_cells(await alice.ask("board")) == board  # nothing changed
    assert "already playing tictactoe" in await alice.ask("play hangman")
    assert "You gave up tictactoe" in await alice.ask("quit")
    assert start  # (the game existed)
    assert "You are not in a game" in await alice.ask("quit")


async def test_the_other_games_through_the_bot(players: Players) -> None:
    rng = random.Random(3)
    p = await players.open("omnivore")
    # guess the number: halving always wins
    body = await p.ask("play guess", "New game: guess the number vs gamebot")
    low, high = 1, 100
    while "Game over" not in body:
        mid = (low + high) // 2
        body = await p.ask(str(mid))
        if f"guessed {mid}: higher" in body:
            low = mid + 1
        elif f"guessed {mid}: lower" in body:
            high = mid - 1
    assert "Game over: you win!" in body
    # hangman: letters until it ends
    body = await p.ask("play hangman", "word:")
    letters = iter("etaoinshrdlucmfwypvbgkqjxz")
    while "Game over" not in body:
        body = await p.ask(next(letters))
    assert "The word was" in body or "Game over: you win!" in body
    # rock, paper, scissors against the bot
    body = await p.ask("play rps")
    while "Game over" not in body:
        body = await p.ask(rng.choice(["rock", "paper", "scissors"]))
        assert "You threw" in body and "Round" in body
    # connect four: keep dropping into column 4 until it is full (or the game ends)
    body = await p.ask("play connect4 hard", "You play X", "1 2 3 4 5 6 7")
    for _ in range(7):
        body = await p.ask("4")
        if "Game over" in body or "Column 4 is full" in body:
            break
        assert "You (X) dropped into column 4." in body
    if "Game over" not in body:
        assert body.startswith("Column 4 is full.")
        assert "You gave up connect4" in await p.ask("quit")
    scores = await p.ask("scores")
    assert "omnivore" in scores and "gamebot" in scores


# --- between two people --------------------------------------------------------------------


async def test_a_challenge_across_a_players_logout(players: Players) -> None:
    alice = await players.open("alice", "alice password", register=True)
    bob = await players.open("bob", "bob password", register=True)
    await alice.ask("challenge nosuchperson tictactoe", "I sent your tictactoe challenge")
    bounced = await alice.expect("I could not give your challenge to nosuchperson")
    assert "there is no such user" in bounced.body
    assert "You can't challenge yourself" in await alice.ask("challenge alice ttt")
    assert "You can challenge someone to" in await alice.ask("challenge bob hangman")
    await alice.ask("challenge bob tictactoe", "I sent your tictactoe challenge to bob")
    invitation = await bob.expect("alice challenges you to tictactoe")
    assert "Send accept to play, or decline" in invitation.body
    assert "already challenged bob" in await alice.ask("challenge bob rps")
    accepted = await bob.ask("accept", "New game: tic-tac-toe vs alice. You play O.")
    assert "Waiting for alice." in accepted
    started = await alice.expect("bob accepted your challenge.", "You play X")
    assert "Now it's your move in tictactoe vs bob" in started.body

    # bob logs out; alice moves; the bot tells bob, who is away.
    await bob.client.close()
    assert "Waiting for bob." in await alice.ask("1", "You took 1.")
    assert "It is not your move" in await alice.ask("2")
    bob = await players.open("bob", "bob password")
    news = await bob.expect("alice took 1.")
    assert news.replay  # from the backlog
    assert "your move in tictactoe vs alice" in news.body
    assert ttt_cells(news.body) == "X........"

    # The game goes on: alice 1 2 3 beats bob 4 5.
    for who, other, square in [(bob, alice, "4"), (alice, bob, "2"), (bob, alice, "5")]:
        await who.ask(square, f"took {square}.")
        await other.expect(f"took {square}.", "Now it's your move")
    await alice.ask("3", "Game over: you win!")
    assert "Game over: alice wins." in (await bob.expect("alice took 3.")).body
    board = board_of(await bob.ask("scores tictactoe"))
    rows = {line.split()[1]: line.split()[2:] for line in board.splitlines()[1:]}
    assert rows["alice"] == ["1", "0", "0"] and rows["bob"] == ["0", "1", "0"]

    # decline, cancel, and resigning
    await bob.ask("challenge alice rps", "I sent your rps challenge")
    await alice.expect("bob challenges you to rps")
    await alice.ask("decline", "You declined bob's rps challenge")
    await bob.expect("alice declined your rps challenge")
    await bob.ask("challenge alice connect4")
    await alice.expect("bob challenges you to connect4")
    await bob.ask("cancel", "You withdrew your connect4 challenge to alice")
    await alice.expect("bob withdrew the connect4 challenge")
    assert "Nobody has challenged you" in await alice.ask("accept")
    await bob.ask("challenge alice rps")
    await alice.expect("bob challenges you to rps")
    await alice.ask("accept", "rock, paper, scissors vs bob")
    await bob.expect("alice accepted your challenge")
    await alice.ask("rock", "You threw rock.")
    assert "alice has thrown." in (await bob.expect("alice has thrown.")).body
    assert "you already threw" in (await alice.ask("paper")).lower()
    await bob.ask("quit", "You resigned the rps game; alice wins.")
    await alice.expect("bob resigned: you win the rps game!")


# --- restarts, timeouts, load ------------------------------------------------------------


async def test_a_game_survives_the_bot_being_killed(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server", FAST_ARGON).start()
    bot = BotProcess(server.port, tmp_path / "bot")
    made = Players(tmp_path, server.port)
    try:
        bot.start()
        alice = await made.open("alice", "alice password", register=True)
        await alice.ask("play tictactoe hard", "New game")
        board = ttt_cells(await alice.ask("5", "You took 5."))
        rng = random.Random(9)
        pause = 0.0
        while True:
            bot.kill()  # mid-game, at a different point of each move
            free = [i for i, c in enumerate(board) if c == "."]
            square = rng.choice(free)
            alice.send(str(square + 1))
            await asyncio.sleep(pause)
            if pause:
                bot.kill()
            bot.start()
            reply = await alice.expect(f"You took {square + 1}.")
            board = ttt_cells(reply.body)
            assert board[square] == "X"
            # Nothing is lost; a repeat is possible only in a one-handler-wide window.
            assert all(m.body == reply.body for m in await alice.quiet(0.2))
            if "Game over" in reply.body:
                break
            pause = 0.05 if pause == 0 else 0.0
        assert "you win" not in reply.body
    finally:
        await made.close()
        bot.kill()
        server.kill()


async def test_moves_time_out_and_challenges_expire_even_across_a_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server", FAST_ARGON).start()
    bot = BotProcess(server.port, tmp_path / "bot", "--move-timeout", "2")
    made = Players(tmp_path, server.port)
    try:
        bot.start()
        alice = await made.open("alice")
        bob = await made.open("bob")
        carol = await made.open("carol")
        # A challenge nobody answers expires.
        await carol.ask("challenge bob rps", "I sent your rps challenge")
        assert "expires in 2 s" in (await bob.expect("carol challenges you to rps")).body
        await carol.expect("bob did not answer your rps challenge; it expired.")
        await bob.expect("The rps challenge from carol expired.")
        # A player who does not move forfeits.
        await alice.ask("challenge bob tictactoe", "I sent")
        await bob.expect("alice challenges you")
        await bob.ask("accept", "Waiting for alice.")
        await alice.expect("Now it's your move")
        t0 = time.monotonic()
        await alice.expect("You did not move in 2 s: bob wins the tictactoe game.")
        assert 1.0 < time.monotonic() - t0 < 6
        await bob.expect("alice did not move in 2 s: you win the tictactoe game.")
        # The same while the bot is down: the deadline passes, the bot applies it on start.
        await alice.ask("challenge bob tictactoe", "I sent")
        await bob.expect("alice challenges you")
        await bob.ask("accept", "Waiting for alice.")
        await alice.expect("Now it's your move")
        bot.kill()
        await asyncio.sleep(2.2)
        bot.start()
        await alice.expect("You did not move in 2 s: bob wins", timeout=3)
        await bob.expect("alice did not move in 2 s: you win")
        board = board_of(await bob.ask("scores"))
        assert re.search(r"1\s+bob\s+2\s+0\s+0", board) and re.search(r"alice\s+0\s+2\s+0", board)
    finally:
        await made.close()
        bot.kill()
        server.kill()


async def test_fifty_games_at_once(tmp_path: Path) -> None:
    # The default flood control (10 msg/s per session) would make the bot, one
    # session, the bottleneck: this server allows more (see docs/bots.md).
    server = ServerProcess(
        tmp_path / "server", {**FAST_ARGON, "rate_per_second": 1000, "rate_burst": 1000}
    ).start()
    bot = BotProcess(server.port, tmp_path / "bot")
    made = Players(tmp_path, server.port)
    try:
        bot.start()
        people = await asyncio.gather(*(made.open(f"p{i:02}") for i in range(SIMULTANEOUS)))

        async def one(i: int, p: Player) -> str:
            level = "hard" if i % 2 else "easy"
            start = await p.ask(f"play tictactoe {level}", f"({level})", timeout=30)
            return await play_ttt_randomly(p, start, random.Random(i))

        t0 = time.monotonic()
        finals = await asyncio.wait_for(
            asyncio.gather(*(one(i, p) for i, p in enumerate(people))), 60
        )
        elapsed = time.monotonic() - t0
        print(f"{SIMULTANEOUS} simultaneous games in {elapsed:.1f} s")
        assert len(finals) == SIMULTANEOUS and all("Game over" in f for f in finals)
        assert not any("you win" in f for i, f in enumerate(finals) if i % 2)  # hard never loses
        board = board_of(await people[0].ask("scores tictactoe"))
        assert "gamebot" in board
        for p in people:  # isolated: nobody got a message about someone else's game
            assert await p.quiet(0) == []
    finally:
        await made.close()
        bot.kill()
        server.kill()


# --- chinwag serve --with-gamebot ----------------------------------------------------------


def _serve_with_gamebot(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = tmp_path / "serve.log"
    args = [sys.executable, "-m", "chinwag", "serve", "--with-gamebot", "--no-announce"]
    args += ["--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    args += ["--data", str(tmp_path / "data"), *extra]
    for name, value in FAST_ARGON.items():
        args += ["--set", f"{name}={value}"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        until(lambda: "gamebot: ready" in log_path.read_text(errors="replace"), 30)
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        print(log_path.read_text(errors="replace"))
        raise
    return proc, log_path


def _found(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    assert match, pattern
    return int(match.group(1))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_serve_with_gamebot_starts_and_stops_the_bot(tmp_path: Path, tls: bool) -> None:
    proc, log_path = _serve_with_gamebot(tmp_path, *(["--tls"] if tls else []))
    try:
        text = log_path.read_text()
        port = _found(r"listening on \S+:(\d+)", text)
        pid = _found(r"game bot started \(pid (\d+)\)", text)
        ssl = None
        if tls:
            from chinwag.net.tls import pinned_context

            ssl = pinned_context(None)
        client = ChatClient(
            "127.0.0.1", port, nick="newcomer", config_dir=tmp_path / "newcomer", ssl=ssl
        )
        await asyncio.wait_for(client.connect(), WAIT)
        try:
            await Player(client).ask("help", "I referee games")
        finally:
            await client.close(timeout=2)
        assert (tmp_path / "data" / "bots" / "gamebot" / "credentials.json").exists()
        if tls:
            proc.send_signal(signal.SIGTERM)  # a clean stop takes the bot along
            assert proc.wait(timeout=15) == 0
            until(lambda: _gone(pid), 5)
            text = log_path.read_text()
            assert "gamebot: stopping" in text
            assert "Fatal Python error" not in text and "Traceback" not in text, text
        else:
            proc.kill()  # kill -9: the bot notices its stdin end, and stops
            proc.wait(timeout=10)
            until(lambda: _gone(pid), 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


async def test_on_an_invite_only_server_the_bot_registers_with_an_invite_link(
    tmp_path: Path,
) -> None:
    server = ServerProcess(
        tmp_path / "server", {**FAST_ARGON, "registration": "invite", "announce": "false"}
    ).start()
    try:
        refused = await asyncio.to_thread(
            subprocess.run,
            [*GAMES_CMD, f"127.0.0.1:{server.port}", "--data", str(tmp_path / "bot")],
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert refused.returncode == 1 and "needs an invite" in refused.stderr
        made = await asyncio.to_thread(
            subprocess.run,
            [
                *INVITE_CMD,
                "--data",
                str(server.data),
                "--host",
                "127.0.0.1",
                "--port",
                str(server.port),
            ],
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        [link] = re.findall(r"chinwag://\S+", made.stdout)
        bot = BotProcess(server.port, tmp_path / "bot", command=[*GAMES_CMD, link])
        bot.start()
        try:
            players = Players(tmp_path, server.port)
            try:
                await (await players.open("guest")).ask("help", "I referee games")
            finally:
                await players.close()
        finally:
            bot.kill()
    finally:
        server.kill()


def test_the_bundled_bot_follows_the_servers_new_certificate(tmp_path: Path) -> None:
    import socket

    from chinwag.net.tls import CERT_FILE, KEY_FILE

    with socket.socket() as probe:  # one port for both runs, as a real server has
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    proc, log_path = _serve_with_gamebot(tmp_path, "--tls", "--port", port)
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        for name in (CERT_FILE, KEY_FILE):  # the admin makes a new certificate
            (tmp_path / "data" / name).unlink()
        proc, log_path = _serve_with_gamebot(tmp_path, "--tls", "--port", port)
        until(lambda: log_path.read_text().count("gamebot: ready") == 2, 30)
        assert "CHANGED" not in log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
