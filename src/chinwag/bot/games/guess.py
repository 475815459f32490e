"""Guess the number: the bot thinks of a number from 1 to 100; seven tries.

Seven tries are always enough if you halve the range each time (2^7 > 100),
so a careful player always wins.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Final, Self

from chinwag.bot.games.base import Game, GameInfo, IllegalMove, Note, cap

__all__ = ["HIGH", "LOW", "TRIES", "GuessNumber"]

LOW: Final = 1
HIGH: Final = 100
TRIES: Final = 7


class GuessNumber(Game):
    """One player (seat 0) guesses a secret number; seat 1 "wins" if the tries run out."""

    INFO = GameInfo(
        name="guess",
        aliases=("number", "guessnumber"),
        title="guess the number",
        summary=f"find my number from {LOW} to {HIGH} in {TRIES} tries",
        how=f"send a number from {LOW} to {HIGH}",
        solo=True,
        versus=False,
    )

    def __init__(self, secret: int, guesses: list[int] | None = None) -> None:
        if not LOW <= secret <= HIGH:
            raise ValueError("bad secret")
        self.secret = secret
        self.guesses = list(guesses or [])
        if len(self.guesses) > TRIES:
            raise ValueError("too many guesses")

    @classmethod
    def new(cls, rng: random.Random, level: str = "") -> Self:
        return cls(rng.randint(LOW, HIGH))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        secret, guesses = data.get("secret"), data.get("guesses", [])
        if not isinstance(secret, int) or not isinstance(guesses, list):
            raise ValueError("bad guess-the-number data")
        if not all(isinstance(g, int) for g in guesses):
            raise ValueError("bad guess-the-number data")
        return cls(secret, guesses)

    def to_json(self) -> dict[str, Any]:
        return {"secret": self.secret, "guesses": list(self.guesses)}

    @property
    def solved(self) -> bool:
        return self.secret in self.guesses

    @property
    def over(self) -> bool:
        return self.solved or len(self.guesses) >= TRIES

    @property
    def winner(self) -> int | None:
        if self.solved:
            return 0
        return 1 if self.over else None

    @property
    def waiting_for(self) -> tuple[int, ...]:
        return () if self.over else (0,)

    @property
    def tries_left(self) -> int:
        return TRIES - len(self.guesses)

    def play(self, seat: int, text: str) -> Note:
        self.check_turn(seat)
        word = text.strip().rstrip(".!?")
        if not (word.isascii() and word.isdigit() and len(word) <= 3):
            raise IllegalMove(f"send a whole number from {LOW} to {HIGH}")
        number = int(word)
        if not LOW <= number <= HIGH:
            raise IllegalMove(f"{number} is not between {LOW} and {HIGH}")
        if number in self.guesses:
            raise IllegalMove(f"you already tried {number}")
        self.guesses.append(number)
        return {"seat": seat, "guess": number}

    def bot_play(self, seat: int, rng: random.Random) -> Note:
        raise IllegalMove("guess the number is played by one person")

    def _hint(self, number: int) -> str:
        if number == self.secret:
            return "that's it"
        return "higher" if number < self.secret else "lower"

    def describe(self, note: Note, names: tuple[str, str], viewer: int | None) -> str:
        number = int(note["guess"])
        text = f"{names[int(note['seat'])]} guessed {number}: {self._hint(number)}."
        if self.over and not self.solved:
            text += f" Out of tries: the number was {self.secret}."
        elif not self.over:
            text += f" {self.tries_left} {'try' if self.tries_left == 1 else 'tries'} left."
        return cap(text)

    def reveal(self) -> str:
        return f"The number was {self.secret}."

    def render(self, viewer: int | None, names: tuple[str, str]) -> str:
        low, high = LOW, HIGH
        for g in self.guesses:
            if g < self.secret:
                low = max(low, g + 1)
            elif g > self.secret:
                high = min(high, g - 1)
        tried = ", ".join(f"{g} ({self._hint(g)})" for g in self.guesses) or "-"
        lines = [f"tried:      {tried}", f"tries left: {self.tries_left}"]
        if not self.over:
            lines.insert(0, f"it is from {low} to {high}")
        return "\n".join(lines)
