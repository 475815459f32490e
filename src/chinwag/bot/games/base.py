"""What every game offers the game bot: pure rules behind one small interface.

A game is a value: it is built from JSON (:meth:`Game.from_json`), changed only
by :meth:`Game.play` and :meth:`Game.bot_play`, and turned back into JSON
(:meth:`Game.to_json`) so that the bot can keep it in its database between
moves, restarts and logouts. Nothing here does I/O or reads a clock, and every
random choice comes from a :class:`random.Random` the caller passes in, so
tests are exact (``random.Random(42)``) and the bot passes ``random.Random()``.

Every game has two seats. Seat 0 moves first. In a game against the bot, the
bot sits in seat 1; in a puzzle (``solo``: hangman, guess the number) seat 1 is
the puzzle, which never moves, and "seat 1 won" means the player lost.

A move the rules refuse raises :class:`IllegalMove` *before* anything changes.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

__all__ = ["Game", "GameInfo", "IllegalMove", "Note", "cap", "names_for"]

Note = dict[str, Any]
"""What :meth:`Game.play` returns: plain JSON data about the move, for :meth:`Game.describe`."""


class IllegalMove(ValueError):
    """The rules refuse this move; ``str(exc)`` tells the player why. Nothing changed."""


@dataclass(frozen=True, slots=True)
class GameInfo:
    """A game's name and what the bot says about it.

    Attributes:
        name: the name used in commands (``play tictactoe``).
        aliases: other accepted names (``ttt``).
        title: the name as shown to people.
        summary: one line for the game list.
        how: how to send a move, after "your move ...: " (``send a square 1-9``).
        solo: a puzzle the player solves alone (the bot only referees).
        versus: two people can play it against each other.
        levels: the bot's levels, easiest first; the first is the default.
    """

    name: str
    aliases: tuple[str, ...]
    title: str
    summary: str
    how: str
    solo: bool = False
    versus: bool = True
    levels: tuple[str, ...] = ()


def cap(text: str) -> str:
    """``text`` with its first letter upper-case when it starts with "you" (nicks stay as typed)."""
    return "Y" + text[1:] if text.startswith("you") else text


def names_for(nicks: Sequence[str], viewer: int | None) -> tuple[str, str]:
    """The two seats' names as seen by ``viewer``: their own seat is "you"."""
    first, second = nicks[0], nicks[1]
    if viewer == 0:
        first = "you"
    elif viewer == 1:
        second = "you"
    return first, second


class Game(ABC):
    """One game in progress: the rules, the position, and how to show it."""

    INFO: ClassVar[GameInfo]

    @classmethod
    @abstractmethod
    def new(cls, rng: random.Random, level: str = "") -> Self:
        """A new game. ``level`` is one of ``INFO.levels`` (or "" between two people)."""

    @classmethod
    @abstractmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a game from :meth:`to_json`'s output.

        Raises:
            ValueError: the data does not describe a game of this kind.
        """

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """The whole game as JSON-compatible data."""

    @property
    @abstractmethod
    def waiting_for(self) -> tuple[int, ...]:
        """The seats that must move now (both, for simultaneous throws); () once over."""

    @property
    @abstractmethod
    def over(self) -> bool:
        """Whether the game has ended."""

    @property
    @abstractmethod
    def winner(self) -> int | None:
        """The winning seat once over; None for a draw (or while playing)."""

    @abstractmethod
    def play(self, seat: int, text: str) -> Note:
        """Make ``seat``'s move, given as the player typed it.

        Raises:
            IllegalMove: not this seat's turn, not a move, or against the rules.
        """

    @abstractmethod
    def bot_play(self, seat: int, rng: random.Random) -> Note:
        """Let the bot make ``seat``'s move at this game's level."""

    @abstractmethod
    def describe(self, note: Note, names: tuple[str, str], viewer: int | None) -> str:
        """One sentence about a move, for ``viewer`` (who may not see hidden moves).

        Args:
            note: what :meth:`play` or :meth:`bot_play` returned.
            names: the seats' names as the viewer sees them (see :func:`names_for`).
            viewer: the seat reading it, or None for an onlooker.
        """

    @abstractmethod
    def render(self, viewer: int | None, names: tuple[str, str]) -> str:
        """The position as monospace text (no fence), as ``viewer`` may see it.

        Args:
            viewer: the seat looking, or None for an onlooker.
            names: the seats' names as the viewer sees them (see :func:`names_for`).
        """

    def mark(self, seat: int) -> str:
        """The seat's piece (``X``), or "" in games without pieces."""
        return ""

    def reveal(self) -> str:
        """A sentence giving away the hidden answer, for a player who gives up ("" if none)."""
        return ""

    def check_turn(self, seat: int) -> None:
        """Raise :class:`IllegalMove` unless ``seat`` may move now."""
        if self.over:
            raise IllegalMove("the game is over")
        if seat not in self.waiting_for:
            raise IllegalMove("it is not your move")
