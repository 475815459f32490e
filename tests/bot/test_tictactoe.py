"""Tic-tac-toe rules, and the proof that hard mode never loses."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from chinwag.bot.games import IllegalMove, TicTacToe
from chinwag.bot.games.tictactoe import (
    best_moves,
    is_full,
    legal_moves,
    place,
    render_board,
    to_move,
    value,
    winner,
)

START = "." * 9
RANDOM_GAMES = 500


def test_every_line_wins_and_nothing_else_does() -> None:
    lines = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]
    for a, b, c in lines:
        board = "".join("X" if i in (a, b, c) else "." for i in range(9))
        assert winner(board) == "X"
    for squares in itertools.combinations(range(9), 3):
        if tuple(squares) not in lines:
            board = "".join("O" if i in squares else "." for i in range(9))
            assert winner(board) is None
    assert winner("XOXXOOOXX") is None and is_full("XOXXOOOXX")


def test_turns_moves_and_rendering() -> None:
    assert to_move(START) == "X" and to_move(place(START, 4, "X")) == "O"
    assert legal_moves("XX.OO....") == [2, 5, 6, 7, 8]
    assert legal_moves("XXXOO....") == []  # over: X has a line
    with pytest.raises(ValueError):
        place("X........", 0, "O")
    assert render_board("X...O...X") == (
        " X | 2 | 3\n---+---+---\n 4 | O | 6\n---+---+---\n 7 | 8 | X"
    )


def test_minimax_values_and_choices() -> None:
    assert value(START) == 0  # perfect play draws
    assert best_moves("XX.OO....") == [2]  # win now rather than block
    assert best_moves("XX..O....") == [2]  # O must block
    # X in a corner: O must take the centre (anything else loses).
    assert best_moves("X........") == [4]


def test_moves_through_the_game_interface() -> None:
    game = TicTacToe.new(random.Random(1), "hard")
    assert game.waiting_for == (0,) and not game.over and game.mark(0) == "X"
    note = game.play(0, " 5 ")
    assert game.describe(note, ("you", "gamebot"), 0) == "You took 5."
    assert game.describe(note, ("alice", "bob"), 1) == "alice took 5."
    for bad, why in [("5", "taken"), ("0", "not a square"), ("10", "not a square"), ("", "square")]:
        with pytest.raises(IllegalMove, match=why):
            game.play(1, bad)
    with pytest.raises(IllegalMove, match="not your move"):
        game.play(0, "1")
    assert game.board == "....X...."  # refused moves changed nothing
    game.bot_play(1, random.Random(2))
    assert game.board.count("O") == 1
    again = TicTacToe.from_json(game.to_json())
    assert (again.board, again.level, again.waiting_for) == (game.board, "hard", (0,))


def test_finished_games_report_winner_or_draw() -> None:
    won = TicTacToe("XX.OO....")
    won.play(0, "3")
    assert won.over and won.winner == 0 and won.waiting_for == ()
    with pytest.raises(IllegalMove, match="over"):
        won.play(1, "9")
    drawn = TicTacToe("XOXXOOOX.")
    drawn.play(0, "9")
    assert drawn.over and drawn.winner is None


def test_bad_saved_boards_are_refused() -> None:
    for data in [{"board": "XX"}, {"board": "XXX......"}, {"board": "abcdefghi"}, {}]:
        with pytest.raises(ValueError):
            TicTacToe.from_json(data)


def _explore(board: str, bot: str, results: Counter[str]) -> None:
    """Every game from ``board`` where the opponent tries every move and the bot
    every move it considers best."""
    mark = winner(board)
    if mark is not None or is_full(board):
        results["draw" if mark is None else "win" if mark == bot else "loss"] += 1
        return
    side = to_move(board)
    for square in best_moves(board) if side == bot else legal_moves(board):
        _explore(place(board, square, side), bot, results)


@pytest.mark.parametrize("bot", ["X", "O"])
def test_hard_never_loses_against_any_line_of_play(bot: str) -> None:
    """Exhaustive: every opponent move sequence, every optimal reply of the bot."""
    results: Counter[str] = Counter()
    _explore(START, bot, results)
    print(f"hard as {bot}: {sum(results.values())} complete games: {dict(results)}")
    assert results["loss"] == 0
    # 6,112 games as O (second), 10,640 as X (first): the whole tree, not a sample.
    assert sum(results.values()) == (10640 if bot == "X" else 6112)


def test_hard_never_loses_against_random_players() -> None:
    rng = random.Random(20261124)
    outcomes: Counter[str] = Counter()
    for number in range(RANDOM_GAMES):
        bot_seat = number % 2  # the bot moves first in half of the games
        game = TicTacToe.new(rng, "hard")
        while not game.over:
            seat = game.waiting_for[0]
            if seat == bot_seat:
                game.bot_play(seat, rng)
            else:
                game.play(seat, str(rng.choice(legal_moves(game.board)) + 1))
        outcomes[
            "draw" if game.winner is None else "bot" if game.winner == bot_seat else "random"
        ] += 1
    print(f"hard vs random, {RANDOM_GAMES} games: {dict(outcomes)}")
    assert outcomes["random"] == 0
    assert outcomes["bot"] > RANDOM_GAMES // 2  # and it does win, not just draw


def test_easy_plays_at_random_and_can_lose() -> None:
    rng = random.Random(7)
    losses = 0
    for _ in range(100):
        game = TicTacToe.new(rng, "easy")
        while not game.over:
            if game.waiting_for == (1,):
                game.bot_play(1, rng)
            else:
                game.play(0, str(best_moves(game.board)[0] + 1))
        losses += game.winner == 0
    assert losses > 10
