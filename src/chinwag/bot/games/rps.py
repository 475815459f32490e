"""Rock, paper, scissors: first to two points, throws revealed together.

Both seats throw in each round, in any order; a throw stays hidden from the
other side until both have thrown. A tied round is thrown again, up to
``MAX_ROUNDS`` rounds in all, after which the leader wins (or it is a draw).
The bot throws at random; it never looks at the other throw first (it could
not: :meth:`RockPaperScissors.bot_play` reads only the random source).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Final, Self

from chinwag.bot.games.base import Game, GameInfo, IllegalMove, Note, cap

__all__ = ["BEATS", "MAX_ROUNDS", "TARGET", "THROWS", "RockPaperScissors", "parse_throw"]

THROWS: Final = ("rock", "paper", "scissors")
BEATS: Final = {"rock": "scissors", "paper": "rock", "scissors": "paper"}
TARGET: Final = 2
MAX_ROUNDS: Final = 9
_SHORT: Final = {"r": "rock", "p": "paper", "s": "scissors", "stone": "rock"}


def parse_throw(text: str) -> str | None:
    """``rock``, ``paper`` or ``scissors`` for what a player typed (``r``, ``Rock!``...)."""
    word = text.strip().rstrip(".!").lower()
    return word if word in THROWS else _SHORT.get(word)


def round_winner(a: str, b: str) -> int | None:
    """0 if throw ``a`` beats ``b``, 1 if ``b`` beats ``a``, None for a tie."""
    if a == b:
        return None
    return 0 if BEATS[a] == b else 1


class RockPaperScissors(Game):
    """A match of rock, paper, scissors between seat 0 and seat 1."""

    INFO = GameInfo(
        name="rps",
        aliases=("rockpaperscissors", "rock-paper-scissors", "roshambo"),
        title="rock, paper, scissors",
        summary=f"first to {TARGET} points",
        how="send rock, paper or scissors",
        levels=("random",),
    )

    def __init__(
        self,
        rounds: list[list[str]] | None = None,
        pending: list[str | None] | None = None,
        level: str = "",
    ) -> None:
        self.rounds = [list(r) for r in rounds or []]
        self.pending: list[str | None] = list(pending or [None, None])
        valid = set(THROWS)
        if len(self.pending) != 2 or any(p is not None and p not in valid for p in self.pending):
            raise ValueError("bad rock-paper-scissors state")
        if any(len(r) != 2 or not set(r) <= valid for r in self.rounds):
            raise ValueError("bad rock-paper-scissors state")
        self.level = level

    @classmethod
    def new(cls, rng: random.Random, level: str = "") -> Self:
        return cls(level=level)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        rounds, pending = data.get("rounds", []), data.get("pending", [None, None])
        level = data.get("level", "")
        if not (isinstance(rounds, list) and isinstance(pending, list) and isinstance(level, str)):
            raise ValueError("bad rock-paper-scissors data")
        return cls(rounds, pending, level)

    def to_json(self) -> dict[str, Any]:
        return {
            "rounds": [list(r) for r in self.rounds],
            "pending": list(self.pending),
            "level": self.level,
        }

    @property
    def points(self) -> tuple[int, int]:
        wins = [round_winner(a, b) for a, b in self.rounds]
        return wins.count(0), wins.count(1)

    @property
    def over(self) -> bool:
        a, b = self.points
        return max(a, b) >= TARGET or len(self.rounds) >= MAX_ROUNDS

    @property
    def winner(self) -> int | None:
        if not self.over:
            return None
        a, b = self.points
        return None if a == b else (0 if a > b else 1)

    @property
    def waiting_for(self) -> tuple[int, ...]:
        if self.over:
            return ()
        return tuple(seat for seat in (0, 1) if self.pending[seat] is None)

    def play(self, seat: int, text: str) -> Note:
        if not self.over and seat not in self.waiting_for:
            raise IllegalMove("you already threw this round; waiting for the other throw")
        self.check_turn(seat)
        throw = parse_throw(text)
        if throw is None:
            raise IllegalMove("send rock, paper or scissors (or r, p, s)")
        return self._throw(seat, throw)

    def bot_play(self, seat: int, rng: random.Random) -> Note:
        self.check_turn(seat)
        return self._throw(seat, rng.choice(THROWS))

    def _throw(self, seat: int, throw: str) -> Note:
        self.pending[seat] = throw
        a, b = self.pending
        if a is None or b is None:
            return {"seat": seat, "throw": throw}
        self.rounds.append([a, b])
        self.pending = [None, None]
        return {"seat": seat, "throw": throw, "round": [a, b], "number": len(self.rounds)}

    def describe(self, note: Note, names: tuple[str, str], viewer: int | None) -> str:
        seat = int(note["seat"])
        if "round" not in note:
            if viewer == seat:
                return cap(f"{names[seat]} threw {note['throw']}.")
            return cap(f"{names[seat]} has thrown.")
        a, b = note["round"]
        won = round_winner(a, b)
        result = "a tie" if won is None else f"point to {names[won]}"
        pa, pb = self.points
        return cap(f"Round {note['number']}: {names[0]} {a}, {names[1]} {b}: {result} ({pa}-{pb}).")

    def render(self, viewer: int | None, names: tuple[str, str]) -> str:
        width = max(8, *(len(n) for n in names))
        lines = [f"round  {names[0]:{width}}  {names[1]:{width}}"]
        for number, (a, b) in enumerate(self.rounds, 1):
            won = round_winner(a, b)
            mark = "tie" if won is None else f"point to {names[won]}"
            lines.append(f"{number:>5}  {a:{width}}  {b:{width}}  {mark}")
        if viewer is not None and self.pending[viewer] is not None:
            lines.append(f"{'now':>5}  {names[viewer]} threw {self.pending[viewer]}")
        pa, pb = self.points
        lines.append(f"score  {pa} - {pb}  (first to {TARGET})")
        return "\n".join(lines)
