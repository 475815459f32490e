"""Connect four: 7 columns, 6 rows, four in a row wins.

The position is kept as seven strings, one per column from the bottom up (``X``
moves first, then ``O``): plain JSON for the bot's database. The bot's
player works on bitboards (the usual 7x7-bit layout: bit ``col * 7 + row``,
with one spare bit per column so that lines never wrap), which makes a move
and a win test a few integer operations.

Levels: ``easy`` wins when it can and otherwise plays at random; ``hard`` is a
depth-limited negamax search with alpha-beta pruning and a heuristic that
counts open windows of four, which is quick (tens of milliseconds) and beats
casual players, but is not a solved, perfect player.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Final, Self

from chinwag.bot.games.base import Game, GameInfo, IllegalMove, Note, cap

__all__ = [
    "COLS",
    "ROWS",
    "ConnectFour",
    "choose",
    "drop",
    "legal_columns",
    "render_columns",
    "winner",
]

COLS: Final = 7
ROWS: Final = 6
_H1: Final = ROWS + 1
_ORDER: Final = (3, 2, 4, 1, 5, 0, 6)  # centre first: better pruning, better play
_WIN: Final = 1_000_000
HARD_DEPTH: Final = 5


def _bit(col: int, row: int) -> int:
    return 1 << (col * _H1 + row)


def _windows() -> tuple[int, ...]:
    out = []
    for col in range(COLS):
        for row in range(ROWS):
            for dc, dr in ((1, 0), (0, 1), (1, 1), (1, -1)):
                end_c, end_r = col + 3 * dc, row + 3 * dr
                if 0 <= end_c < COLS and 0 <= end_r < ROWS:
                    out.append(sum(_bit(col + k * dc, row + k * dr) for k in range(4)))
    return tuple(out)


_WINDOWS: Final = _windows()  # all 69 lines of four
_WEIGHT: Final = (0, 1, 8, 64, 0)
_CENTRE: Final = sum(_bit(3, r) for r in range(ROWS))
_BOTTOM: Final = tuple(_bit(c, 0) for c in range(COLS))
_TOP: Final = tuple(_bit(c, ROWS - 1) for c in range(COLS))


def _four(stones: int) -> bool:
    for shift in (1, _H1, _H1 - 1, _H1 + 1):  # vertical, horizontal, two diagonals
        pairs = stones & (stones >> shift)
        if pairs & (pairs >> (2 * shift)):
            return True
    return False


def _check(columns: Sequence[str]) -> None:
    if len(columns) != COLS or any(
        not isinstance(c, str) or len(c) > ROWS or set(c) - {"X", "O"} for c in columns
    ):
        raise ValueError("not a connect-four position")
    x = sum(c.count("X") for c in columns)
    o = sum(c.count("O") for c in columns)
    if x - o not in (0, 1):
        raise ValueError("impossible counts")


def _bitboards(columns: Sequence[str], mark: str) -> tuple[int, int]:
    """(stones of ``mark``, all stones)."""
    mine = mask = 0
    for col, stack in enumerate(columns):
        for row, cell in enumerate(stack):
            mask |= _bit(col, row)
            if cell == mark:
                mine |= _bit(col, row)
    return mine, mask


def winner(columns: Sequence[str]) -> str | None:
    """``X`` or ``O`` if that mark has four in a line, else None."""
    for mark in ("X", "O"):
        if _four(_bitboards(columns, mark)[0]):
            return mark
    return None


def to_move(columns: Sequence[str]) -> str:
    """The mark that moves next (X moves first)."""
    x = sum(c.count("X") for c in columns)
    o = sum(c.count("O") for c in columns)
    return "X" if x == o else "O"


def legal_columns(columns: Sequence[str]) -> list[int]:
    """The columns (0-6) with room, for a game that is not over; [] once it is."""
    if winner(columns) is not None:
        return []
    return [c for c in range(COLS) if len(columns[c]) < ROWS]


def drop(columns: Sequence[str], col: int, mark: str) -> list[str]:
    """The columns after dropping ``mark`` into ``col`` (0-6)."""
    if len(columns[col]) >= ROWS:
        raise ValueError(f"column {col} is full")
    out = list(columns)
    out[col] += mark
    return out


def _score(me: int, opp: int) -> int:
    total = 3 * ((me & _CENTRE).bit_count() - (opp & _CENTRE).bit_count())
    for window in _WINDOWS:
        a = me & window
        b = opp & window
        if not b:
            total += _WEIGHT[a.bit_count()]
        elif not a:
            total -= _WEIGHT[b.bit_count()]
    return total


def _negamax(me: int, mask: int, depth: int, alpha: int, beta: int, played: int) -> int:
    """Worth of the position to the side to move (``me``: its stones)."""
    opp = me ^ mask
    for col in _ORDER:  # a win now ends the search: the sooner, the better
        if not mask & _TOP[col]:
            stone = (mask + _BOTTOM[col]) & ~mask
            if _four(me | stone):
                return _WIN - played
    if played + 1 >= COLS * ROWS:
        return 0
    if depth == 0:
        return _score(me, opp)
    best = -_WIN * 2
    for col in _ORDER:
        if mask & _TOP[col]:
            continue
        new_mask = mask | (mask + _BOTTOM[col])
        # After our move the opponent is to move: its stones are opp.
        score = -_negamax(opp, new_mask, depth - 1, -beta, -alpha, played + 1)
        if score > best:
            best = score
        if best > alpha:
            alpha = best
        if alpha >= beta:
            break
    return best


def choose(columns: Sequence[str], level: str, rng: random.Random, depth: int = HARD_DEPTH) -> int:
    """The bot's column (0-6) for the side to move.

    Args:
        columns: the position; the game must not be over.
        level: ``easy`` (win if possible, else random) or ``hard`` (search).
        rng: where random choices come from.
        depth: how many moves ahead ``hard`` looks.
    """
    mark = to_move(columns)
    legal = legal_columns(columns)
    if not legal:
        raise ValueError("the game is over")
    me, mask = _bitboards(columns, mark)
    played = sum(len(c) for c in columns)
    for col in legal:
        if _four(me | ((mask + _BOTTOM[col]) & ~mask)):
            return col
    if level != "hard":
        return rng.choice(legal)
    opp = me ^ mask
    scores: dict[int, int] = {}
    alpha = -_WIN * 2
    for col in sorted(legal, key=_ORDER.index):
        new_mask = mask | (mask + _BOTTOM[col])
        # A full window (not alpha-beta's) at the root would be slower; ties are
        # broken by centre-first order, which is good play anyway.
        scores[col] = -_negamax(opp, new_mask, depth - 1, -_WIN * 2, -alpha + 1, played + 1)
        alpha = max(alpha, scores[col])
    top = max(scores.values())
    return next(c for c in sorted(legal, key=_ORDER.index) if scores[c] == top)


def render_columns(columns: Sequence[str]) -> str:
    """The board as text, top row first, with column numbers above."""
    lines = [" " + " ".join(str(c + 1) for c in range(COLS))]
    for row in range(ROWS - 1, -1, -1):
        cells = [col[row] if row < len(col) else "." for col in columns]
        lines.append("|" + " ".join(cells) + "|")
    lines.append("+" + "-" * (2 * COLS - 1) + "+")
    return "\n".join(lines)


class ConnectFour(Game):
    """A game of connect four: seat 0 is X and moves first, seat 1 is O."""

    INFO = GameInfo(
        name="connect4",
        aliases=("connectfour", "connect-four", "c4"),
        title="connect four",
        summary="drop stones, four in a row wins (7x6)",
        how="send a column 1-7",
        levels=("easy", "hard"),
    )
    MARKS: Final = ("X", "O")

    def __init__(self, columns: Sequence[str] | None = None, level: str = "") -> None:
        cols = list(columns) if columns is not None else [""] * COLS
        _check(cols)
        self.columns = cols
        self.level = level

    @classmethod
    def new(cls, rng: random.Random, level: str = "") -> Self:
        return cls(None, level)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        columns, level = data.get("columns"), data.get("level", "")
        if not isinstance(columns, list) or not isinstance(level, str):
            raise ValueError("bad connect-four data")
        return cls(columns, level)

    def to_json(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "level": self.level}

    @property
    def over(self) -> bool:
        return winner(self.columns) is not None or all(len(c) == ROWS for c in self.columns)

    @property
    def winner(self) -> int | None:
        mark = winner(self.columns)
        return None if mark is None else self.MARKS.index(mark)

    @property
    def waiting_for(self) -> tuple[int, ...]:
        return () if self.over else (self.MARKS.index(to_move(self.columns)),)

    def play(self, seat: int, text: str) -> Note:
        self.check_turn(seat)
        word = text.strip().rstrip(".!").lower()
        if len(word) == 1 and "a" <= word <= "g":
            word = str(ord(word) - ord("a") + 1)
        if len(word) != 1 or word not in "1234567":
            raise IllegalMove("that is not a column: send a number from 1 to 7")
        col = int(word) - 1
        if len(self.columns[col]) >= ROWS:
            raise IllegalMove(f"column {word} is full")
        return self._drop(seat, col)

    def bot_play(self, seat: int, rng: random.Random) -> Note:
        self.check_turn(seat)
        return self._drop(seat, choose(self.columns, self.level, rng))

    def _drop(self, seat: int, col: int) -> Note:
        self.columns = drop(self.columns, col, self.MARKS[seat])
        return {"seat": seat, "column": col + 1}

    def describe(self, note: Note, names: tuple[str, str], viewer: int | None) -> str:
        seat = int(note["seat"])
        return cap(f"{names[seat]} ({self.MARKS[seat]}) dropped into column {note['column']}.")

    def mark(self, seat: int) -> str:
        return self.MARKS[seat]

    def render(self, viewer: int | None, names: tuple[str, str]) -> str:
        return render_columns(self.columns)
