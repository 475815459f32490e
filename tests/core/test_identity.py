"""Identity rules in-process: both skeletons, reserved nicks, password normalisation,
rehashing, the bounded hashing queue, and the conditional hash replacement in SQLite."""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path

import argon2
import pytest

from chinwag.config import Settings, SettingsError, build
from chinwag.core.accounts import (
    HashQueueFull,
    LoginThrottle,
    PasswordHasher,
    ReservedNicks,
    check_login,
    check_password,
    normalise_password,
    parse_nick,
)
from chinwag.errors import BadNick, BadRequest, RateLimited
from chinwag.storage.base import AccountRow
from chinwag.storage.sqlite import SqliteStore

FAST = Settings(argon2_time_cost=1, argon2_memory_kib=64, argon2_parallelism=1)
NFC = unicodedata.normalize("NFC", "d\u00e9j\u00e0 vu, ma\u00f1ana")
NFD = unicodedata.normalize("NFD", NFC)


@pytest.fixture
async def hasher() -> AsyncIterator[PasswordHasher]:
    h = PasswordHasher(FAST)
    yield h
    h.close(wait=True)


# --- skeletons --------------------------------------------------------------------------


def test_a_capital_i_is_caught_by_the_skeleton_of_the_unfolded_nick() -> None:
    alice, fake = parse_nick("alice"), parse_nick("aIice")
    assert fake.key != alice.key
    assert fake.skeleton != alice.skeleton  # the contract's rule alone lets it pass
    assert set(fake.skeletons) & set(alice.skeletons)


def test_both_paths_give_the_same_skeletons() -> None:
    for raw in ("aIice", "Bob", "rn-m", "x_1"):
        plain = parse_nick(raw)
        checked = parse_nick(raw + "\u00e9")  # not plain ASCII: the full path
        assert plain.display_skeleton + "e\u0301" == checked.display_skeleton


# --- reserved nicks -------------------------------------------------------------------


def test_reserved_nicks_refuse_the_nick_and_its_look_alikes() -> None:
    reserved = ReservedNicks(Settings().reserved_nicks)
    for raw in ("server", "ADMIN", "r\u043eot", "NickServ", "operator", "SYSTEM", "chinwag"):
        with pytest.raises(BadNick) as info:
            reserved.check(parse_nick(raw))
        assert "keeps for its own use" in info.value.message
        assert "pick another" in info.value.message
    for raw in ("administrator", "serverless", "alice"):
        reserved.check(parse_nick(raw))


def test_an_empty_list_reserves_nothing_and_a_bad_name_is_named() -> None:
    ReservedNicks("").check(parse_nick("admin"))
    with pytest.raises(ValueError, match="'no spaces'"):
        ReservedNicks("admin, no spaces")


# --- passwords --------------------------------------------------------------------------


def test_nfc_and_nfd_normalise_alike() -> None:
    assert NFC != NFD
    assert normalise_password(NFD) == normalise_password(NFC) == NFC
    assert normalise_password("a\u00a0b\u2003c") == "a b c"  # non-ASCII spaces
    assert normalise_password("tab\there") is None


def test_a_new_password_with_a_control_character_is_refused_plainly() -> None:
    with pytest.raises(BadRequest) as info:
        check_password("secret\x07password", FAST)
    assert "control character" in info.value.message
    assert "secret" not in info.value.message


async def test_a_password_hashed_as_nfc_verifies_as_nfd(hasher: PasswordHasher) -> None:
    h = await hasher.hash(NFC)
    assert (await hasher.check(h, NFD)).ok
    assert (await hasher.check(h, NFC)) == (await hasher.check(h, NFD))
    assert not (await hasher.check(h, "deja vu, manana")).ok


async def test_an_old_hash_of_the_typed_form_verifies_and_asks_for_a_rehash(
    hasher: PasswordHasher,
) -> None:
    old = argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash(NFD.encode())
    verdict = await hasher.check(old, NFD)
    assert verdict.ok and verdict.rehash
    assert not (await hasher.check(old, NFC)).ok  # until it is rehashed
    new = await hasher.hash(NFD)
    assert (await hasher.check(new, NFC)).ok
    assert not (await hasher.check(new, NFD)).rehash


async def test_a_hash_of_a_lower_cost_asks_for_a_rehash(hasher: PasswordHasher) -> None:
    cheap = await hasher.hash("correct horse")
    dearer = PasswordHasher(FAST.replace(argon2_time_cost=2))
    try:
        verdict = await dearer.check(cheap, "correct horse")
        assert verdict.ok and verdict.rehash
        assert not (await dearer.check(cheap, "wrong horse")).rehash
        fresh = await dearer.hash("correct horse")
        assert (await dearer.check(fresh, "correct horse")).rehash is False
    finally:
        dearer.close(wait=True)


# --- the hashing queue ------------------------------------------------------------------


async def test_a_full_queue_refuses_at_once_and_counts_what_reached_the_hasher() -> None:
    settings = Settings(
        argon2_time_cost=3, argon2_memory_kib=32768, hash_workers=1, hash_queue_max=2
    )
    hasher = PasswordHasher(settings)
    try:
        h = await hasher.hash("correct horse")
        assert hasher.jobs == 1
        results = await asyncio.gather(
            *(hasher.check(h, f"guess {i}") for i in range(10)), return_exceptions=True
        )
        refused = [r for r in results if isinstance(r, HashQueueFull)]
        assert len(refused) == 7
        assert all(r.code == "rate_limited" and r.retry_after > 0 for r in refused)
        assert hasher.jobs == 1 + 3
        assert hasher.pending == 0
        assert (await hasher.check(h, "correct horse")).ok  # room again
    finally:
        hasher.close(wait=True)


async def test_a_full_queue_gives_the_login_slot_back() -> None:
    settings = Settings(
        argon2_time_cost=3, argon2_memory_kib=32768, hash_workers=1, hash_queue_max=0
    )
    hasher = PasswordHasher(settings)
    throttle = LoginThrottle(settings)
    try:
        h = await hasher.hash("correct horse")
        results = await asyncio.gather(
            *(check_login(hasher, throttle, "ann", "x", h, f"guess {i}") for i in range(5)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, HashQueueFull) for r in results) == 4
        # One failure counted, not five: four more wrong guesses still reach the hasher.
        for i in range(4):
            assert not (await check_login(hasher, throttle, "ann", "x", h, f"again {i}")).ok
        with pytest.raises(RateLimited):
            await check_login(hasher, throttle, "ann", "x", h, "correct horse")
    finally:
        hasher.close(wait=True)


# --- the stored hash --------------------------------------------------------------------


async def test_a_rehash_never_undoes_a_password_change(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "chinwag.db")
    try:
        nick = parse_nick("ann")
        row = AccountRow(nick.key, nick.display, nick.skeleton, "$old", 0, False, False)
        await store.create_account(row)
        assert await store.set_password_hash("ann", "$changed")
        assert not await store.replace_password_hash("ann", "$old", "$rehashed")
        got = await store.get_account("ann")
        assert got is not None and got.password_hash == "$changed"
        assert await store.replace_password_hash("ann", "$changed", "$rehashed")
        got = await store.get_account("ann")
        assert got is not None and got.password_hash == "$rehashed"
    finally:
        await store.close()


def test_a_reserved_name_that_is_no_nick_stops_the_server_from_starting() -> None:
    with pytest.raises(SettingsError, match="reserved_nicks: 'no spaces' is not a nick"):
        build(overrides=["reserved_nicks=admin, no spaces"])
    assert build(overrides=["reserved_nicks="]).reserved_nicks == ""
