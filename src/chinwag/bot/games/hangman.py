"""Hangman: guess the word one letter at a time, before the drawing is complete.

The word comes from the bundled list ``words.txt`` (package data), chosen with
the injected random source. Six wrong guesses lose. A guess is one letter
``a``-``z``, or the whole word (a wrong word costs one miss, like a letter).
"""

from __future__ import annotations

import functools
import importlib.resources
import random
from collections.abc import Mapping
from typing import Any, Final, Self

from chinwag.bot.games.base import Game, GameInfo, IllegalMove, Note, cap

__all__ = ["MAX_MISSES", "Hangman", "load_words", "words"]

MAX_MISSES: Final = 6
_ALPHABET: Final = frozenset("abcdefghijklmnopqrstuvwxyz")

# (head, body, legs) after 0-6 misses
_GALLOWS: Final = (
    ("", "", ""),
    ("O", "", ""),
    ("O", " |", ""),
    ("O", "/|", ""),
    ("O", "/|\\", ""),
    ("O", "/|\\", "/"),
    ("O", "/|\\", "/ \\"),
)


def load_words(text: str) -> tuple[str, ...]:
    """The words of a word-list text: one per line, ``#`` comments and blanks skipped.

    Raises:
        ValueError: a line is not a word of 2-20 letters a-z, or there is no word.
    """
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not (2 <= len(line) <= 20 and set(line) <= _ALPHABET):
            raise ValueError(f"line {number}: {line!r} is not a word of letters a-z")
        out.append(line)
    if not out:
        raise ValueError("the word list is empty")
    return tuple(out)


@functools.cache
def words() -> tuple[str, ...]:
    """The bundled word list."""
    text = importlib.resources.files(__package__).joinpath("words.txt").read_text("utf-8")
    return load_words(text)


def _letters(text: str) -> str:
    return text.strip().rstrip(".!").lower()


class Hangman(Game):
    """A game of hangman for one player (seat 0); seat 1 "wins" if the player hangs."""

    INFO = GameInfo(
        name="hangman",
        aliases=("hang",),
        title="hangman",
        summary="guess the word before you hang (6 misses)",
        how="send a letter, or the whole word",
        solo=True,
        versus=False,
    )

    def __init__(self, word: str, guessed: str = "", misses: int = 0, solved: bool = False) -> None:
        if not (word and set(word) <= _ALPHABET and set(guessed) <= _ALPHABET):
            raise ValueError("bad hangman state")
        if not 0 <= misses <= MAX_MISSES:
            raise ValueError("bad hangman state")
        self.word = word
        self.guessed = guessed  # letters tried, in order
        self.misses = misses
        self.solved = solved or set(word) <= set(guessed)

    @classmethod
    def new(cls, rng: random.Random, level: str = "") -> Self:
        return cls(rng.choice(words()))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        word, guessed = data.get("word"), data.get("guessed", "")
        misses, solved = data.get("misses", 0), data.get("solved", False)
        if not (isinstance(word, str) and isinstance(guessed, str) and isinstance(misses, int)):
            raise ValueError("bad hangman data")
        return cls(word, guessed, misses, solved is True)

    def to_json(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "guessed": self.guessed,
            "misses": self.misses,
            "solved": self.solved,
        }

    @property
    def over(self) -> bool:
        return self.solved or self.misses >= MAX_MISSES

    @property
    def winner(self) -> int | None:
        if self.solved:
            return 0
        return 1 if self.misses >= MAX_MISSES else None

    @property
    def waiting_for(self) -> tuple[int, ...]:
        return () if self.over else (0,)

    def play(self, seat: int, text: str) -> Note:
        self.check_turn(seat)
        guess = _letters(text)
        if not guess or not set(guess) <= _ALPHABET:
            raise IllegalMove("send one letter a-z, or the whole word")
        if len(guess) == 1:
            if guess in self.guessed:
                raise IllegalMove(f"you already tried {guess}")
            self.guessed += guess
            hit = guess in self.word
            if not hit:
                self.misses += 1
            self.solved = set(self.word) <= set(self.guessed)
            return {"seat": seat, "letter": guess, "hit": hit}
        if len(guess) != len(self.word):
            raise IllegalMove(f"the word has {len(self.word)} letters, not {len(guess)}")
        if guess == self.word:
            self.solved = True
            return {"seat": seat, "word": guess, "hit": True}
        self.misses += 1
        return {"seat": seat, "word": guess, "hit": False}

    def bot_play(self, seat: int, rng: random.Random) -> Note:
        raise IllegalMove("hangman is played by one person")

    def describe(self, note: Note, names: tuple[str, str], viewer: int | None) -> str:
        who = names[int(note["seat"])]
        if "letter" in note:
            verdict = "it is in the word" if note["hit"] else "it is not in the word"
            text = f"{who} tried {note['letter']}: {verdict}."
        else:
            verdict = "right!" if note["hit"] else "wrong."
            text = f"{who} guessed the word {note['word']}: {verdict}"
        if self.over:
            text += f" The word was {self.word}."
        return cap(text)

    def reveal(self) -> str:
        return f"The word was {self.word}."

    def render(self, viewer: int | None, names: tuple[str, str]) -> str:
        head, body, legs = _GALLOWS[min(self.misses, MAX_MISSES)]
        shown = " ".join(c if c in self.guessed or self.over else "_" for c in self.word)
        wrong = " ".join(c for c in self.guessed if c not in self.word) or "-"
        return "\n".join(
            [
                "  +---+",
                "  |   |",
                f"  {head:3} |",
                f" {body:4} |",
                f" {legs:4} |",
                "      |",
                "=========",
                f"word:   {shown}",
                f"misses: {wrong}  ({self.misses}/{MAX_MISSES})",
            ]
        )
