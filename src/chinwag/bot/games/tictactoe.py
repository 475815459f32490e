"""Tic-tac-toe: the rules, a random player and a perfect one.

A board is a string of nine characters, row by row from the top left: ``X``,
``O`` or ``.`` for an empty square. X always moves first, so whose turn it is
follows from the board. Squares are numbered 1-9 for people (like a phone
keypad) and 0-8 in code.

The perfect player is plain minimax over every position (there are fewer
than 6,000 reachable ones), memoized: from the empty board the whole tree is
searched once per process. It prefers a quicker win and a slower loss, and
picks among equally good moves at random, so it varies its play and still
never loses (``tests/bot/test_tictactoe.py`` checks every line an opponent
can play).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from typing import Any, Final, Self

from chinwag.bot.games.base import Game, GameInfo, IllegalMove, Note, cap

__all__ = [
    "EMPTY",
    "LINES",
    "TicTacToe",
    "best_moves",
    "is_full",
    "legal_moves",
    "place",
    "render_board",
    "to_move",
    "value",
    "winner",
]

EMPTY: Final = "."
START: Final = EMPTY * 9
LINES: Final = (
    (0, 1, 2),
    (3, 4, 5),
    (6, 7, 8),
    (0, 3, 6),
    (1, 4, 7),
    (2, 5, 8),
    (0, 4, 8),
    (2, 4, 6),
)


def _check(board: str) -> None:
    if len(board) != 9 or set(board) - {"X", "O", EMPTY}:
        raise ValueError(f"not a tic-tac-toe board: {board!r}")
    x, o = board.count("X"), board.count("O")
    if x - o not in (0, 1):
        raise ValueError(f"impossible counts in {board!r}")


def winner(board: str) -> str | None:
    """``X`` or ``O`` if that mark has three in a line, else None."""
    for a, b, c in LINES:
        if board[a] != EMPTY and board[a] == board[b] == board[c]:
            return board[a]
    return None


def is_full(board: str) -> bool:
    """Whether no square is empty."""
    return EMPTY not in board


def to_move(board: str) -> str:
    """The mark that moves next (X moves first)."""
    return "X" if board.count("X") == board.count("O") else "O"


def legal_moves(board: str) -> list[int]:
    """The empty squares (0-8) of a game that is not over; [] once it is."""
    if winner(board) is not None:
        return []
    return [i for i, cell in enumerate(board) if cell == EMPTY]


def place(board: str, square: int, mark: str) -> str:
    """The board with ``mark`` on the empty ``square`` (0-8)."""
    if board[square] != EMPTY:
        raise ValueError(f"square {square} is taken")
    return board[:square] + mark + board[square + 1 :]


@functools.cache
def value(board: str) -> int:
    """The board's worth to the side to move, with perfect play from both sides.

    Positive: it wins (more when sooner); 0: a draw; negative: it loses (less
    negative when later). A finished board is worth ``-(1 + empty squares)``
    to the side to move when the previous mover won, else 0.
    """
    if winner(board) is not None:
        return -(1 + board.count(EMPTY))
    if is_full(board):
        return 0
    mark = to_move(board)
    return max(-value(place(board, i, mark)) for i in legal_moves(board))


def best_moves(board: str) -> list[int]:
    """Every optimal move (0-8) for the side to move, in square order."""
    mark = to_move(board)
    scored = [(-value(place(board, i, mark)), i) for i in legal_moves(board)]
    if not scored:
        return []
    top = max(s for s, _ in scored)
    return [i for s, i in scored if s == top]


def render_board(board: str) -> str:
    """The board as text; empty squares show their number."""
    cells = [c if c != EMPTY else str(i + 1) for i, c in enumerate(board)]
    rows = [f" {cells[r]} | {cells[r + 1]} | {cells[r + 2]}" for r in (0, 3, 6)]
    return "\n---+---+---\n".join(rows)


class TicTacToe(Game):
    """A game of tic-tac-toe: seat 0 is X and moves first, seat 1 is O."""

    INFO = GameInfo(
        name="tictactoe",
        aliases=("ttt", "tic-tac-toe", "noughts"),
        title="tic-tac-toe",
        summary="three in a row on a 3x3 board",
        how="send a square 1-9",
        levels=("easy", "hard"),
    )
    MARKS: Final = ("X", "O")

    def __init__(self, board: str = START, level: str = "") -> None:
        _check(board)
        self.board = board
        self.level = level

    @classmethod
    def new(cls, rng: random.Random, level: str = "") -> Self:
        return cls(START, level)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        board, level = data.get("board"), data.get("level", "")
        if not isinstance(board, str) or not isinstance(level, str):
            raise ValueError("bad tic-tac-toe data")
        return cls(board, level)

    def to_json(self) -> dict[str, Any]:
        return {"board": self.board, "level": self.level}

    @property
    def over(self) -> bool:
        return winner(self.board) is not None or is_full(self.board)

    @property
    def winner(self) -> int | None:
        mark = winner(self.board)
        return None if mark is None else self.MARKS.index(mark)

    @property
    def waiting_for(self) -> tuple[int, ...]:
        return () if self.over else (self.MARKS.index(to_move(self.board)),)

    def play(self, seat: int, text: str) -> Note:
        self.check_turn(seat)
        word = text.strip().rstrip(".!")
        if len(word) != 1 or word not in "123456789":
            raise IllegalMove("that is not a square: send a number from 1 to 9")
        square = int(word) - 1
        if self.board[square] != EMPTY:
            raise IllegalMove(f"square {word} is taken")
        return self._put(seat, square)

    def bot_play(self, seat: int, rng: random.Random) -> Note:
        self.check_turn(seat)
        options = best_moves(self.board) if self.level == "hard" else legal_moves(self.board)
        return self._put(seat, rng.choice(options))

    def _put(self, seat: int, square: int) -> Note:
        self.board = place(self.board, square, self.MARKS[seat])
        return {"seat": seat, "square": square + 1}

    def describe(self, note: Note, names: tuple[str, str], viewer: int | None) -> str:
        seat = int(note["seat"])
        return cap(f"{names[seat]} took {note['square']}.")

    def mark(self, seat: int) -> str:
        return self.MARKS[seat]

    def render(self, viewer: int | None, names: tuple[str, str]) -> str:
        return render_board(self.board)
