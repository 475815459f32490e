"""The other games' rules, and what every game promises the bot (pure, seeded)."""

from __future__ import annotations

import json
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chinwag.bot.games import (
    GAMES,
    ConnectFour,
    Game,
    GuessNumber,
    Hangman,
    IllegalMove,
    RockPaperScissors,
    find_game,
)
from chinwag.bot.games.connectfour import choose, drop, legal_columns, to_move, winner
from chinwag.bot.games.hangman import MAX_MISSES, load_words, words
from chinwag.bot.games.rps import parse_throw, round_winner

# --- every game ----------------------------------------------------------------------

NONSENSE = ["", " ", "xyzzy", "{0}", "%s%n", "```", "0", "-1", "99999", "1e3", "٣", "é", "\u202e"]


def test_registry_names_and_aliases() -> None:
    assert sorted(GAMES) == ["connect4", "guess", "hangman", "rps", "tictactoe"]
    assert find_game("TTT") is GAMES["tictactoe"] and find_game(" c4 ") is ConnectFour
    assert find_game("chess") is None


def _random_move(game: Game, seat: int, rng: random.Random) -> str:
    if isinstance(game, GuessNumber):
        return str(rng.randint(1, 100))
    if isinstance(game, Hangman):
        return rng.choice("abcdefghijklmnopqrstuvwxyz")
    if isinstance(game, RockPaperScissors):
        return rng.choice(["rock", "paper", "scissors", "r", "p", "s"])
    if isinstance(game, ConnectFour):
        return str(rng.randint(1, 7))
    return str(rng.randint(1, 9))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), kind=st.sampled_from(sorted(GAMES)))
def test_any_play_keeps_the_promises(seed: int, kind: str) -> None:
    """Random (often illegal) moves: a refused move changes nothing, the game
    survives JSON at every step, and it always ends with a consistent result."""
    rng = random.Random(seed)
    cls = GAMES[kind]
    game = cls.new(rng, cls.INFO.levels[-1] if cls.INFO.levels else "")
    for _ in range(500):
        if game.over:
            break
        seat = rng.choice(game.waiting_for)
        before = json.dumps(game.to_json(), sort_keys=True)
        text = rng.choice([_random_move(game, seat, rng), rng.choice(NONSENSE)])
        try:
            note = game.play(seat, text)
        except IllegalMove as exc:
            refusal: str | None = str(exc)
        else:
            refusal = None
        if refusal is not None:  # refused with a reason, and the game is unchanged
            assert refusal and json.dumps(game.to_json(), sort_keys=True) == before
            continue
        assert json.loads(json.dumps(note)) == note  # notes are plain JSON
        for viewer in (0, 1, None):
            assert game.describe(note, ("alice", "bob"), viewer)
            assert "```" not in game.render(viewer, ("alice", "bob"))
        game = cls.from_json(json.loads(json.dumps(game.to_json())))
        if not cls.INFO.solo and 1 in game.waiting_for and rng.random() < 0.5:
            game.bot_play(1, rng)
    assert game.over
    assert game.waiting_for == ()
    assert game.winner in (0, 1, None)
    with pytest.raises(IllegalMove):
        game.play(0, _random_move(game, 0, rng))


def test_a_seed_decides_everything() -> None:
    for cls in GAMES.values():
        a = cls.new(random.Random(5), cls.INFO.levels[0] if cls.INFO.levels else "")
        b = cls.new(random.Random(5), cls.INFO.levels[0] if cls.INFO.levels else "")
        assert a.to_json() == b.to_json()


# --- connect four --------------------------------------------------------------------


def cols(*stacks: str) -> list[str]:
    return [*stacks, *[""] * (7 - len(stacks))]


def test_connect_four_lines_in_every_direction() -> None:
    assert winner(cols("XXXX")) == "X"  # vertical
    assert winner(cols("X", "X", "X", "X", "OOO")) == "X"  # horizontal
    assert winner(cols("X", "OX", "OOX", "OOOX")) == "X"  # diagonal /
    assert winner(cols("OOOX", "OOX", "OX", "X")) == "X"  # diagonal \
    assert winner(cols("XXX", "OOO")) is None
    # no wrap-around between the top of one column and the bottom of the next
    assert winner(cols("OOOXXX", "X", "", "", "", "", "")) is None


def test_connect_four_moves_and_full_columns() -> None:
    game = ConnectFour.new(random.Random(1), "easy")
    for _ in range(3):
        game.play(0, "4")
        game.play(1, "4")
    with pytest.raises(IllegalMove, match="column 4 is full"):
        game.play(0, "4")
    with pytest.raises(IllegalMove, match="not a column"):
        game.play(0, "8")
    note = game.play(0, "a")  # letters a-g name columns too
    assert note == {"seat": 0, "column": 1}
    assert game.describe(note, ("you", "bob"), 0) == "You (X) dropped into column 1."
    assert game.render(None, ("a", "b")).splitlines()[0] == " 1 2 3 4 5 6 7"
    assert legal_columns(game.columns) == [0, 1, 2, 4, 5, 6]


def test_connect_four_bot_wins_when_it_can_and_blocks_when_it_must() -> None:
    rng = random.Random(3)
    assert choose(cols("XXX", "OO", "O"), "easy", rng) == 0  # X wins at once
    assert choose(cols("XXX", "OOO"), "hard", rng) == 0  # X to move: win, not block
    threat = cols("", "O", "O", "O", "XX", "X")  # X to move; O threatens 1 and 5
    assert to_move(threat) == "X"
    assert choose(threat, "hard", rng) in (0, 4)
    # O to move; X threatens column 1: hard blocks
    assert choose(cols("XXX", "O", "O", "", "X"), "hard", rng) == 0


def test_connect_four_hard_beats_random_players() -> None:
    rng = random.Random(11)
    results = []
    for number in range(12):
        bot = number % 2
        game = ConnectFour.new(rng, "hard")
        while not game.over:
            seat = game.waiting_for[0]
            if seat == bot:
                game.bot_play(seat, rng)
            else:
                game.play(seat, str(rng.choice(legal_columns(game.columns)) + 1))
        results.append(game.winner == bot)
    assert all(results)


def test_connect_four_draw_when_the_board_fills() -> None:
    # A full board with no four: columns alternate in pairs so no line forms.
    pattern = ["XXOOXX", "OOXXOO", "XXOOXX", "OOXXOO", "XXOOXX", "OOXXOO", "XXOOX"]
    game = ConnectFour(pattern)
    assert not game.over and game.waiting_for == (1,)
    game.play(1, "7")
    assert game.over and game.winner is None
    assert drop(cols(), 0, "X")[0] == "X"


# --- hangman -------------------------------------------------------------------------


def test_bundled_word_list_is_clean() -> None:
    bundled = words()
    assert len(bundled) >= 500 and len(set(bundled)) == len(bundled)
    assert all(re.fullmatch(r"[a-z]{4,10}", w) for w in bundled)
    with pytest.raises(ValueError, match="line 2"):
        load_words("good\nBad!\n")
    with pytest.raises(ValueError, match="empty"):
        load_words("# only a comment\n")


def test_hangman_letters_words_and_misses() -> None:
    game = Hangman("banana")
    note = game.play(0, "A")
    assert note == {"seat": 0, "letter": "a", "hit": True}
    assert "word:   _ a _ a _ a" in game.render(0, ("you", "gamebot"))
    with pytest.raises(IllegalMove, match="already tried a"):
        game.play(0, "a")
    for bad in ["", "1", "é", "a b", "{0}"]:
        with pytest.raises(IllegalMove):
            game.play(0, bad)
    with pytest.raises(IllegalMove, match="6 letters"):
        game.play(0, "nope")
    game.play(0, "bonanza"[:6])  # a wrong word of the right length costs a miss
    assert game.misses == 1
    game.play(0, "banana")
    assert game.over and game.winner == 0
    assert "The word was banana" in game.describe(
        {"seat": 0, "word": "banana", "hit": True}, ("you", "gamebot"), 0
    )


def test_hangman_hangs_after_six_misses() -> None:
    game = Hangman("kiwi")
    for letter in "abcdef"[:MAX_MISSES]:
        assert not game.over
        game.play(0, letter)
    assert game.over and game.winner == 1 and game.reveal() == "The word was kiwi."
    drawing = game.render(0, ("you", "gamebot")).splitlines()
    assert drawing[2:5] == ["  O   |", " /|\\  |", " / \\  |"]


# --- guess the number ----------------------------------------------------------------


def test_guess_hints_and_halving_always_wins() -> None:
    for secret in range(1, 101):
        game = GuessNumber(secret)
        low, high = 1, 100
        while not game.over:
            mid = (low + high) // 2
            game.play(0, str(mid))
            if mid < secret:
                low = mid + 1
            elif mid > secret:
                high = mid - 1
        assert game.winner == 0, secret


def test_guess_refuses_nonsense_and_runs_out() -> None:
    game = GuessNumber(42)
    for bad, why in [
        ("0", "not between"),
        ("101", "not between"),
        ("ten", "whole number"),
        ("4.2", "whole number"),
        ("٤٢", "whole number"),
        ("", "whole number"),
    ]:
        with pytest.raises(IllegalMove, match=why):
            game.play(0, bad)
    note = game.play(0, "50")
    assert game.describe(note, ("you", "gamebot"), 0) == "You guessed 50: lower. 6 tries left."
    with pytest.raises(IllegalMove, match="already tried 50"):
        game.play(0, "50")
    for n in (1, 2, 3, 4, 5, 6):
        game.play(0, str(n))
    assert (
        game.over
        and game.winner == 1
        and "the number was 42" in game.describe({"seat": 0, "guess": 6}, ("you", "gamebot"), 0)
    )


# --- rock, paper, scissors -----------------------------------------------------------


def test_rps_throws_are_hidden_until_both_are_in() -> None:
    assert [parse_throw(t) for t in ["R", "paper!", "s", "stone", "lizard"]] == [
        "rock",
        "paper",
        "scissors",
        "rock",
        None,
    ]
    assert round_winner("rock", "scissors") == 0 and round_winner("rock", "paper") == 1
    game = RockPaperScissors()
    assert game.waiting_for == (0, 1)
    first = game.play(1, "rock")
    assert game.describe(first, ("alice", "you"), 1) == "You threw rock."
    assert game.describe(first, ("you", "bob"), 0) == "bob has thrown."
    assert "rock" not in game.render(0, ("you", "bob"))
    with pytest.raises(IllegalMove, match="already threw"):
        game.play(1, "paper")
    second = game.play(0, "paper")
    assert game.describe(second, ("you", "bob"), 0) == (
        "Round 1: you paper, bob rock: point to you (1-0)."
    )
    game.play(0, "rock")
    game.play(1, "rock")  # a tie: no point
    assert game.points == (1, 0) and not game.over
    game.play(0, "scissors")
    game.play(1, "paper")
    assert game.over and game.winner == 0


def test_rps_ends_after_max_rounds_of_ties() -> None:
    game = RockPaperScissors()
    while not game.over:
        game.play(0, "rock")
        game.play(1, "rock")
    assert game.winner is None and len(game.rounds) == 9
