"""The games the game bot plays: pure rules, randomness injected.

:data:`GAMES` maps each game's name to its class; :func:`find_game` also knows
the aliases (``ttt``, ``c4``...).
"""

from __future__ import annotations

from typing import Final

from chinwag.bot.games.base import Game, GameInfo, IllegalMove, Note
from chinwag.bot.games.connectfour import ConnectFour
from chinwag.bot.games.guess import GuessNumber
from chinwag.bot.games.hangman import Hangman
from chinwag.bot.games.rps import RockPaperScissors
from chinwag.bot.games.tictactoe import TicTacToe

__all__ = [
    "GAMES",
    "ConnectFour",
    "Game",
    "GameInfo",
    "GuessNumber",
    "Hangman",
    "IllegalMove",
    "Note",
    "RockPaperScissors",
    "TicTacToe",
    "find_game",
]

GAMES: Final[dict[str, type[Game]]] = {
    cls.INFO.name: cls for cls in (TicTacToe, ConnectFour, Hangman, GuessNumber, RockPaperScissors)
}

_BY_NAME: Final = {
    name: cls for cls in GAMES.values() for name in (cls.INFO.name, *cls.INFO.aliases)
}


def find_game(name: str) -> type[Game] | None:
    """The game called ``name`` (or one of its aliases, any case), or None."""
    return _BY_NAME.get(name.strip().lower())
