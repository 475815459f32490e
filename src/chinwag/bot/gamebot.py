"""The game bot: ``chinwag bot games``. Games by direct message, kept across restarts.

People DM it ``help``, ``play tictactoe hard``, ``challenge bob connect4``,
``accept``, their moves, ``board``, ``quit`` and ``scores``. Everything it
knows lives in its store (:mod:`chinwag.bot.store`), saved with every move:

========== ===================== ============================================
namespace  key                   value
========== ===================== ============================================
games      game id               kind, players, level, the game's JSON, deadline
playing    player (casefolded)   the id of the game they are in
invites    challenger            who was challenged to what, until when
scores     kind/player           won, lost, drawn
meta       next_game             the next game id
========== ===================== ============================================

So a game survives the bot's restart and a player's logout: every message
to a player is a DM, which the server keeps for an account that is away, and
a player who comes back finds "your move in tictactoe vs alice" in the
backlog. A player is in at most one game at a time; games never share state.

Between two people, a player who does not move within ``move_timeout``
seconds forfeits, and a challenge not answered within it expires; the bot
checks on a timer and right after it starts, so time spent down counts too.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from chinwag.bot.framework import Actions, Bot, Context, Undeliverable, quote
from chinwag.bot.games import GAMES, Game, IllegalMove, Note, find_game, tictactoe
from chinwag.bot.games.base import cap, names_for
from chinwag.client.events import fold_nick

__all__ = ["DEFAULT_MOVE_TIMEOUT", "GameBot", "duration", "run_gamebot"]

log = logging.getLogger("chinwag.bot")

DEFAULT_MOVE_TIMEOUT: Final = 3 * 24 * 3600.0
BOT_SEAT: Final = 1
FENCE: Final = "```"
TOP: Final = 10

GAMES_NS: Final = "games"
PLAYING_NS: Final = "playing"
INVITES_NS: Final = "invites"
SCORES_NS: Final = "scores"
META_NS: Final = "meta"


def duration(seconds: float) -> str:
    """``seconds`` in words, to the nearest sensible unit (``3 days``, ``90 s``)."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size * 2 or (seconds >= size and seconds % size == 0):
            n = round(seconds / size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} s"


def fenced(text: str) -> str:
    """``text`` in a fenced block: monospace in the terminal client and the GUI."""
    return f"{FENCE}\n{text}\n{FENCE}"


@dataclass
class Match:
    """A game in the store, loaded for one unit of work.

    Attributes:
        gid: its id (the key in ``games``).
        kind: the game's name (``tictactoe``).
        players: the display nicks of seats 0 and 1; None in seat 1 is the bot.
        level: the bot's level, in a game against it.
        game: the rules and position.
        deadline: when the player to move forfeits (games between two people).
    """

    gid: str
    kind: str
    players: list[str | None]
    level: str
    game: Game
    deadline: float | None

    @property
    def cls(self) -> type[Game]:
        return type(self.game)

    @property
    def title(self) -> str:
        return self.cls.INFO.name

    @property
    def versus_bot(self) -> bool:
        return self.players[BOT_SEAT] is None

    def humans(self) -> list[int]:
        """The seats people sit in."""
        return [seat for seat, nick in enumerate(self.players) if nick is not None]

    def seat_of(self, nick: str) -> int | None:
        key = fold_nick(nick)
        for seat, player in enumerate(self.players):
            if player is not None and fold_nick(player) == key:
                return seat
        return None

    def name(self, seat: int, bot: str) -> str:
        player = self.players[seat]
        return player if player is not None else bot

    def names(self, viewer: int | None, bot: str) -> tuple[str, str]:
        return names_for((self.name(0, bot), self.name(1, bot)), viewer)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "players": list(self.players),
            "level": self.level,
            "state": self.game.to_json(),
            "deadline": self.deadline,
        }

    @classmethod
    def from_json(cls, gid: str, data: dict[str, Any]) -> Match:
        game_cls = GAMES[data["kind"]]
        return cls(
            gid,
            data["kind"],
            list(data["players"]),
            data.get("level", ""),
            game_cls.from_json(data["state"]),
            data.get("deadline"),
        )


class GameBot:
    """The game bot's commands and rules of play, on a :class:`~chinwag.bot.Bot`.

    Args:
        nick: its nick.
        move_timeout: seconds a player of a two-person game has for each move,
            and a challenged player has to answer.
        check_every: seconds between checks for timeouts (default: a quarter of
            ``move_timeout``, between 0.5 s and 60 s).
        rng: the random source for games and the bot's moves.
        clock: seconds since the epoch.
    """

    def __init__(
        self,
        nick: str = "gamebot",
        *,
        move_timeout: float = DEFAULT_MOVE_TIMEOUT,
        check_every: float | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if move_timeout <= 0:
            raise ValueError("move_timeout must be positive")
        self.move_timeout = move_timeout
        check = check_every if check_every is not None else min(60.0, max(0.5, move_timeout / 4))
        bot = self.bot = Bot(
            nick, about="I referee games, by direct message.", rng=rng, clock=clock
        )
        bot.command("help", "games", "rules", "hi", "hello", help="help [GAME]")(self.help)
        bot.command("play", "start", "new", help="play GAME [LEVEL]", dm_only=True)(self.play)
        bot.command("challenge", "vs", help="challenge NICK GAME", dm_only=True)(self.challenge)
        bot.command("accept", help="accept [NICK]", dm_only=True)(self.accept)
        bot.command("decline", help="decline [NICK]", dm_only=True)(self.decline)
        bot.command("cancel", "withdraw", help="cancel", dm_only=True)(self.cancel)
        bot.command("board", "show", help="board", dm_only=True)(self.board)
        bot.command("quit", "resign", "forfeit", help="quit", dm_only=True)(self.quit)
        bot.command("scores", "score", "leaderboard", help="scores [GAME]")(self.scores)
        bot.command("move", help="move MOVE", dm_only=True)(self.move)
        bot.fallback(self.fallback)
        bot.every(check)(self.check_timeouts)
        bot.on_start(self.check_timeouts)
        bot.on_start(self._warm_up)
        bot.on_undeliverable(self.undeliverable)

    @property
    def nick(self) -> str:
        return self.bot.nick

    # --- the store ------------------------------------------------------------------

    def _match_of(self, acts: Actions, nick: str) -> Match | None:
        gid = acts.store.get(PLAYING_NS, fold_nick(nick))
        if gid is None:
            return None
        data = acts.store.get(GAMES_NS, gid)
        if data is None:
            acts.store.delete(PLAYING_NS, fold_nick(nick))  # a dangling pointer: heal it
            return None
        return Match.from_json(gid, data)

    def _new_match(
        self, acts: Actions, cls: type[Game], players: list[str | None], level: str
    ) -> Match:
        number = int(acts.store.get(META_NS, "next_game", 1))
        acts.store.put(META_NS, "next_game", number + 1)
        deadline = None if players[BOT_SEAT] is None else acts.now + self.move_timeout
        match = Match(
            str(number), cls.INFO.name, players, level, cls.new(acts.rng, level), deadline
        )
        for nick in players:
            if nick is not None:
                acts.store.put(PLAYING_NS, fold_nick(nick), match.gid)
        self._save(acts, match)
        return match

    def _save(self, acts: Actions, match: Match) -> None:
        acts.store.put(GAMES_NS, match.gid, match.to_json())

    def _end(self, acts: Actions, match: Match, winner: int | None, *, scored: bool = True) -> None:
        """Remove a finished game and, if ``scored``, count it on the leaderboard."""
        acts.store.delete(GAMES_NS, match.gid)
        for nick in match.players:
            if nick is not None:
                acts.store.delete(PLAYING_NS, fold_nick(nick))
        if not scored:
            return
        for seat in (0, 1):
            if match.players[seat] is None and match.cls.INFO.solo:
                continue  # a puzzle does not play; only the player is scored
            result = "drawn" if winner is None else "won" if winner == seat else "lost"
            self._score(acts, match.kind, match.name(seat, self.nick), result)

    def _score(self, acts: Actions, kind: str, nick: str, result: str) -> None:
        key = f"{kind}/{fold_nick(nick)}"
        row = acts.store.get(SCORES_NS, key) or {"won": 0, "lost": 0, "drawn": 0}
        row["nick"] = nick
        row[result] = int(row.get(result, 0)) + 1
        acts.store.put(SCORES_NS, key, row)

    def _invites_to(self, acts: Actions, nick: str) -> list[dict[str, Any]]:
        key = fold_nick(nick)
        found = [inv for _, inv in acts.store.items(INVITES_NS) if fold_nick(inv["to"]) == key]
        return sorted(found, key=lambda inv: float(inv["sent"]))

    # --- messages -------------------------------------------------------------------

    def _status(self, match: Match, seat: int) -> str:
        game, info = match.game, match.cls.INFO
        opponent = match.name(1 - seat, self.nick)
        if game.over:
            if game.winner is None:
                return "Game over: a draw."
            if game.winner == seat:
                return "Game over: you win!"
            return "Game over: you lose." if info.solo else f"Game over: {opponent} wins."
        if seat in game.waiting_for:
            return f"Now it's your move in {match.title} vs {opponent}: {info.how}."
        return f"Waiting for {opponent}."

    def _view(self, match: Match, seat: int, lead: str) -> str:
        """One message for a player: what happened, the board, what now."""
        board = fenced(match.game.render(seat, match.names(seat, self.nick)))
        parts = [lead] if lead else []
        return "\n".join([*parts, board, self._status(match, seat)])

    def _header(self, match: Match, seat: int) -> str:
        info = match.cls.INFO
        text = f"{info.title} vs {match.name(1 - seat, self.nick)}"
        if match.versus_bot and match.level and len(info.levels) > 1:
            text += f" ({match.level})"
        mark = match.game.mark(seat)
        return f"New game: {text}." + (f" You play {mark}." if mark else "")

    def _after_moves(self, acts: Actions, match: Match, notes: Sequence[Note]) -> None:
        """Tell each player what happened; then save the game, or end and score it."""
        for seat in match.humans():
            names = match.names(seat, self.nick)
            lead = " ".join(match.game.describe(note, names, seat) for note in notes)
            nick = match.players[seat]
            assert nick is not None
            acts.dm(nick, self._view(match, seat, lead))
        if match.game.over:
            self._end(acts, match, match.game.winner)
        else:
            if not match.versus_bot:
                match.deadline = acts.now + self.move_timeout
            self._save(acts, match)

    def _games_list(self, versus_only: bool = False) -> str:
        rows = []
        for cls in GAMES.values():
            info = cls.INFO
            if versus_only and not info.versus:
                continue
            levels = f" ({', '.join(info.levels)})" if len(info.levels) > 1 else ""
            rows.append(f"{info.name:10} {info.title}: {info.summary}{levels}")
        return "\n".join(rows)

    # --- commands -------------------------------------------------------------------

    def help(self, ctx: Context) -> None:
        if ctx.words and (cls := find_game(ctx.words[0])) is not None:
            info = cls.INFO
            lines = [f"{info.title}: {info.summary}.", f"Moves: {info.how}."]
            if info.levels and len(info.levels) > 1:
                lines.append(
                    f"Levels: {', '.join(info.levels)}. Send play {info.name} {info.levels[-1]}."
                )
            else:
                lines.append(f"Send play {info.name}.")
            if info.versus:
                lines.append(f"Against a friend: challenge NICK {info.name}.")
            ctx.reply("\n".join(lines))
            return
        commands = "\n".join(
            [
                "play GAME [LEVEL]     play me (e.g. play tictactoe hard)",
                "challenge NICK GAME   play someone; they get an invitation",
                "accept / decline      answer a challenge (add NICK if several)",
                "cancel                withdraw your challenge",
                "board                 show your game",
                "quit                  give up your game",
                "scores [GAME]         the leaderboard",
                "help GAME             how a game is played",
            ]
        )
        ctx.reply(
            f"I referee games, by direct message. Games:\n{fenced(self._games_list())}\n"
            f"Commands:\n{fenced(commands)}\nIn a game, just send your move."
        )

    def play(self, ctx: Context) -> None:
        words = ctx.words
        if not words:
            ctx.reply(f"Play what? Send play GAME, one of:\n{fenced(self._games_list())}")
            return
        self._start_solo(ctx, words[0], words[1] if len(words) > 1 else "")

    def _start_solo(self, ctx: Context, name: str, level: str) -> None:
        current = self._match_of(ctx, ctx.sender)
        if current is not None:
            ctx.reply(
                f"You are already playing {current.title} vs "
                f"{current.name(1 - (current.seat_of(ctx.sender) or 0), self.nick)}. "
                "Send board to see it, or quit to give it up."
            )
            return
        cls = find_game(name)
        if cls is None:
            ctx.reply(f"I don't know the game {quote(name)}. Games:\n{fenced(self._games_list())}")
            return
        info = cls.INFO
        level = level.lower()
        if info.levels:
            if not level:
                level = info.levels[0]
            elif level not in info.levels:
                ctx.reply(f"{info.title} levels: {', '.join(info.levels)}.")
                return
        else:
            level = ""
        match = self._new_match(ctx, cls, [ctx.sender, None], level)
        ctx.reply(self._view(match, 0, self._header(match, 0)))

    def challenge(self, ctx: Context) -> None:
        words = ctx.words
        if len(words) < 2:
            ctx.reply("Send challenge NICK GAME, e.g. challenge bob tictactoe.")
            return
        nick, cls = words[0].lstrip("@").rstrip(",:"), find_game(words[1])
        if cls is None or not cls.INFO.versus:
            ctx.reply(f"You can challenge someone to:\n{fenced(self._games_list(True))}")
            return
        if not nick:
            ctx.reply("Challenge whom? Send challenge NICK GAME.")
            return
        title = cls.INFO.name
        if fold_nick(nick) == fold_nick(ctx.sender):
            ctx.reply(f"You can't challenge yourself. Send play {title} to play me.")
            return
        if fold_nick(nick) == fold_nick(self.nick):
            ctx.reply(f"To play me, send play {title}.")
            return
        current = self._match_of(ctx, ctx.sender)
        if current is not None:
            ctx.reply(f"Finish your game of {current.title} first (or send quit).")
            return
        mine = ctx.store.get(INVITES_NS, fold_nick(ctx.sender))
        if mine is not None:
            ctx.reply(
                f"You already challenged {mine['to']} to {mine['kind']}; "
                "send cancel to withdraw it."
            )
            return
        expires = ctx.now + self.move_timeout
        ctx.store.put(
            INVITES_NS,
            fold_nick(ctx.sender),
            {"from": ctx.sender, "to": nick, "kind": title, "sent": ctx.now, "expires": expires},
        )
        ctx.dm(
            nick,
            f"{ctx.sender} challenges you to {title}. Send accept to play, or decline. "
            f"The challenge expires in {duration(self.move_timeout)}.",
            tag="invite:" + fold_nick(ctx.sender),
        )
        ctx.reply(
            f"I sent your {title} challenge to {nick}; I will tell you the answer. "
            "Send cancel to withdraw it."
        )

    def _pick_invite(self, ctx: Context, verb: str) -> dict[str, Any] | None:
        invites = self._invites_to(ctx, ctx.sender)
        if ctx.words:
            want = fold_nick(ctx.words[0].lstrip("@"))
            invites = [inv for inv in invites if fold_nick(inv["from"]) == want]
            if not invites:
                ctx.reply(f"{ctx.words[0]} has not challenged you (or the challenge expired).")
                return None
        if not invites:
            ctx.reply("Nobody has challenged you (or the challenge expired).")
            return None
        if len(invites) > 1:
            choices = ", ".join(f"{inv['from']} ({inv['kind']})" for inv in invites)
            ctx.reply(f"Several challenges: {choices}. Send {verb} NICK.")
            return None
        return invites[0]

    def accept(self, ctx: Context) -> None:
        invite = self._pick_invite(ctx, "accept")
        if invite is None:
            return
        challenger = str(invite["from"])
        current = self._match_of(ctx, ctx.sender)
        if current is not None:
            ctx.reply(
                f"Finish your game of {current.title} first (or send quit); "
                "the challenge stays open until it expires."
            )
            return
        if self._match_of(ctx, challenger) is not None:
            ctx.reply(f"{challenger} is in another game right now; try again later.")
            return
        ctx.store.delete(INVITES_NS, fold_nick(challenger))
        cls = GAMES[str(invite["kind"])]
        match = self._new_match(ctx, cls, [challenger, ctx.sender], "")
        ctx.dm(
            challenger,
            self._view(match, 0, f"{ctx.sender} accepted your challenge. {self._header(match, 0)}"),
        )
        ctx.reply(self._view(match, 1, self._header(match, 1)))

    def decline(self, ctx: Context) -> None:
        invite = self._pick_invite(ctx, "decline")
        if invite is None:
            return
        ctx.store.delete(INVITES_NS, fold_nick(str(invite["from"])))
        ctx.dm(str(invite["from"]), f"{ctx.sender} declined your {invite['kind']} challenge.")
        ctx.reply(f"You declined {invite['from']}'s {invite['kind']} challenge.")

    def cancel(self, ctx: Context) -> None:
        invite = ctx.store.get(INVITES_NS, fold_nick(ctx.sender))
        if invite is None:
            ctx.reply("You have no open challenge.")
            return
        ctx.store.delete(INVITES_NS, fold_nick(ctx.sender))
        ctx.dm(str(invite["to"]), f"{ctx.sender} withdrew the {invite['kind']} challenge.")
        ctx.reply(f"You withdrew your {invite['kind']} challenge to {invite['to']}.")

    def board(self, ctx: Context) -> None:
        match = self._match_of(ctx, ctx.sender)
        if match is None:
            ctx.reply("You are not in a game. Send help to see the games.")
            return
        seat = match.seat_of(ctx.sender)
        assert seat is not None
        ctx.reply(
            self._view(match, seat, f"{match.cls.INFO.title} vs {match.name(1 - seat, self.nick)}:")
        )

    def quit(self, ctx: Context) -> None:
        match = self._match_of(ctx, ctx.sender)
        if match is None:
            if ctx.store.get(INVITES_NS, fold_nick(ctx.sender)) is not None:
                self.cancel(ctx)
            else:
                ctx.reply("You are not in a game.")
            return
        seat = match.seat_of(ctx.sender)
        assert seat is not None
        opponent = match.name(1 - seat, self.nick)
        self._end(ctx, match, 1 - seat)
        if match.versus_bot:
            ctx.reply(cap(f"You gave up {match.title}. {match.game.reveal()}".strip()))
            return
        other = match.players[1 - seat]
        assert other is not None
        ctx.dm(other, f"{ctx.sender} resigned: you win the {match.title} game!")
        ctx.reply(f"You resigned the {match.title} game; {opponent} wins.")

    def scores(self, ctx: Context) -> None:
        kind = None
        if ctx.words:
            cls = find_game(ctx.words[0])
            if cls is None:
                ctx.reply(f"I don't know the game {quote(ctx.words[0])}.")
                return
            kind = cls.INFO.name
        totals: dict[str, dict[str, Any]] = {}
        for key, row in ctx.store.items(SCORES_NS):
            if kind is not None and not key.startswith(kind + "/"):
                continue
            player = key.partition("/")[2]
            total = totals.setdefault(
                player, {"nick": row["nick"], "won": 0, "lost": 0, "drawn": 0}
            )
            for result in ("won", "lost", "drawn"):
                total[result] += int(row.get(result, 0))
        what = "all games" if kind is None else kind
        if not totals:
            ctx.reply(f"No scores yet ({what}). Send help to see the games.")
            return
        ranked = sorted(totals.items(), key=lambda kv: (-kv[1]["won"], kv[1]["lost"], kv[0]))
        width = max(4, *(len(t["nick"]) for _, t in ranked[:TOP]))
        lines = [f" #  {'nick':{width}}  won  lost  drawn"]
        for place, (_, t) in enumerate(ranked[:TOP], 1):
            lines.append(
                f"{place:>2}  {t['nick']:{width}}  {t['won']:>3}  {t['lost']:>4}  {t['drawn']:>5}"
            )
        text = f"Leaderboard, {what}:\n{fenced(chr(10).join(lines))}"
        me = fold_nick(ctx.sender)
        if me in totals and all(p != me for p, _ in ranked[:TOP]):
            t = totals[me]
            place = [p for p, _ in ranked].index(me) + 1
            text += f"\nYou: #{place}, {t['won']} won, {t['lost']} lost, {t['drawn']} drawn."
        ctx.reply(text)

    async def move(self, ctx: Context) -> None:
        await self._move(ctx, ctx.args)

    async def fallback(self, ctx: Context) -> None:
        await self._move(ctx, ctx.message.body)

    async def _move(self, ctx: Context, text: str) -> None:
        match = self._match_of(ctx, ctx.sender)
        if match is None:
            if find_game(ctx.command) is not None and ctx.command != "move":
                self._start_solo(ctx, ctx.command, ctx.args.split()[0] if ctx.args else "")
            elif self._invites_to(ctx, ctx.sender):
                ctx.reply("You have a challenge waiting: send accept or decline.")
            elif ctx.not_understood():
                ctx.reply(
                    f"I don't know {quote(text)}. "
                    "You are not in a game: send help to see the games."
                )
            return
        seat = match.seat_of(ctx.sender)
        assert seat is not None
        try:
            note = match.game.play(seat, text)
        except IllegalMove as exc:
            # Nothing changed: the game object is thrown away, the store untouched.
            if not ctx.not_understood():
                return
            reason = str(exc)
            ctx.reply(f"{reason[:1].upper()}{reason[1:]}. {self._status(match, seat)}")
            return
        notes = [note]
        if match.versus_bot and BOT_SEAT in match.game.waiting_for and not match.cls.INFO.solo:
            # A search can take tens of milliseconds: off the event loop, so that the
            # connection stays served meanwhile. (Units run one at a time: nothing
            # else touches this game or the random source in between.)
            notes.append(await asyncio.to_thread(match.game.bot_play, BOT_SEAT, ctx.rng))
        self._after_moves(ctx, match, notes)

    # --- timers and failures -----------------------------------------------------------

    @staticmethod
    async def _warm_up(acts: Actions) -> None:
        """Solve tic-tac-toe once now (a tenth of a second), not during someone's first game."""
        await asyncio.to_thread(tictactoe.value, "." * 9)

    def check_timeouts(self, acts: Actions) -> None:
        """Forfeit games whose player to move ran out of time; expire old challenges."""
        for gid, data in acts.store.items(GAMES_NS):
            deadline = data.get("deadline")
            if deadline is None or float(deadline) > acts.now:
                continue
            try:
                match = Match.from_json(gid, data)
            except (KeyError, TypeError, ValueError):
                log.exception("game %s cannot be read; left alone", gid)
                continue
            late = match.game.waiting_for
            if len(late) == 1:
                loser = late[0]
                winner = 1 - loser
                self._end(acts, match, winner)
                for seat in match.humans():
                    who = "You" if seat == loser else match.name(loser, self.nick)
                    verdict = (
                        "you win" if seat == winner else f"{match.name(winner, self.nick)} wins"
                    )
                    nick = match.players[seat]
                    assert nick is not None
                    acts.dm(
                        nick,
                        f"{who} did not move in {duration(self.move_timeout)}: "
                        f"{verdict} the {match.title} game.",
                    )
            else:
                self._end(acts, match, None, scored=False)
                for seat in match.humans():
                    nick = match.players[seat]
                    assert nick is not None
                    acts.dm(nick, f"Nobody moved in time: the {match.title} game is called off.")
        for key, invite in acts.store.items(INVITES_NS):
            if float(invite["expires"]) > acts.now:
                continue
            acts.store.delete(INVITES_NS, key)
            acts.dm(
                str(invite["from"]),
                f"{invite['to']} did not answer your {invite['kind']} challenge; it expired.",
            )
            acts.dm(
                str(invite["to"]), f"The {invite['kind']} challenge from {invite['from']} expired."
            )

    def undeliverable(self, acts: Actions, failed: Undeliverable) -> None:
        """A challenge to a nick the server does not know: call it off, tell the challenger."""
        if failed.tag is None or not failed.tag.startswith("invite:"):
            return
        key = failed.tag.removeprefix("invite:")
        invite = acts.store.get(INVITES_NS, key)
        if invite is None or fold_nick(str(invite["to"])) != fold_nick(failed.target):
            return
        acts.store.delete(INVITES_NS, key)
        why = "there is no such user" if failed.code == "no_such_user" else failed.reason
        acts.dm(str(invite["from"]), f"I could not give your challenge to {failed.target}: {why}.")


def run_gamebot(args: argparse.Namespace) -> int:
    """``chinwag bot games``: run the game bot with parsed command-line options.

    ``args`` has ``server``, ``nick``, ``data``, ``move_timeout`` and ``seed``.
    """
    seed = getattr(args, "seed", None)
    gamebot = GameBot(
        str(args.nick),
        move_timeout=float(args.move_timeout),
        rng=random.Random(seed) if seed is not None else None,
    )
    return gamebot.bot.run_from_args(args)
