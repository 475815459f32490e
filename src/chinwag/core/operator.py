"""The operator's account actions, one implementation for both ways of reaching them.

``chinwag admin delete`` and ``reset-password`` run this code inside the running
server (through its control socket: the server applies them to the store and
ends the account's live sessions at once) or, when no server runs, on the data
directory's store directly. Either way they check and change the same things and
say the same words.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chinwag.config import Settings
from chinwag.core.accounts import PasswordHasher, check_password, parse_nick
from chinwag.core.moderation import OPERATOR, Moderation
from chinwag.errors import ChatError, RateLimited
from chinwag.protocol.events import Grant, Moderate
from chinwag.storage.base import AccountRow, AuditEntry, Store

# end_sessions(key, reason, message) -> how many sessions ended (Hub.end_sessions).
EndSessions = Callable[[str, str, str], int]

DELETED = "account_deleted"
PASSWORD_RESET = "password_reset"


class ActionRefused(Exception):
    """The action was refused and nothing changed; ``status`` is the exit code to give.

    Args:
        message: what is wrong, in plain words.
        status: 2 for bad input (a nick or password that cannot be), 1 otherwise.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class AccountActions:
    """Delete an account or reset its password, and end its live sessions.

    Args:
        settings: the password rules (and the hasher's costs).
        store: the truth.
        hasher: argon2id, off the event loop.
        end_sessions: ends the live sessions of an account (the running
            server's hub); None when no server runs, so nobody is online.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        hasher: PasswordHasher,
        end_sessions: EndSessions | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._hasher = hasher
        self._end_sessions = end_sessions

    async def _account(self, raw: str) -> AccountRow:
        try:
            key = parse_nick(raw).key
        except ChatError as exc:
            raise ActionRefused(exc.message, 2) from None
        row = await self._store.get_account(key)
        if row is None or row.deleted:
            raise ActionRefused(f"no account called {raw!r}", 1)
        return row

    async def _audit(self, action: str, nick: str) -> None:
        """Keep the operator's action in the audit log (issue 16)."""
        await self._store.add_audit(
            AuditEntry(int(time.time() * 1000), "operator", action, None, nick)
        )

    def _end(self, key: str, reason: str, message: str) -> str:
        if self._end_sessions is None:
            return ""
        count = self._end_sessions(key, reason, message)
        return f"; {count} live session(s) ended" if count else ""

    async def delete(self, raw_nick: str) -> str:
        """Delete the account (its nick stays reserved) and end its sessions.

        Returns:
            What was done, for the operator.

        Raises:
            ActionRefused: no such account, or not a nick.
        """
        row = await self._account(raw_nick)
        if not await self._store.delete_account(row.key):
            raise ActionRefused(f"no account called {raw_nick!r}", 1)
        await self._audit("delete-account", row.nick)
        ended = self._end(
            row.key,
            DELETED,
            "the server's operator deleted your account; this nick cannot log in any more",
        )
        return f"deleted {row.nick}; the nick stays reserved{ended}"

    async def reset_password(self, raw_nick: str, password: str) -> str:
        """Give the account a new password and end its sessions (they used the old one).

        Returns:
            What was done, for the operator (never the password).

        Raises:
            ActionRefused: no such account, not a nick, or a password the rules refuse.
        """
        row = await self._account(raw_nick)
        try:
            check_password(password, self._settings)
            password_hash = await self._hasher.hash(password)  # refuses text that is not Unicode
        except RateLimited as exc:  # the hasher is busy: retry, the input was fine
            raise ActionRefused(exc.message, 1) from None
        except ChatError as exc:
            raise ActionRefused(exc.message, 2) from None
        if not await self._store.set_password_hash(row.key, password_hash):
            raise ActionRefused(f"no account called {raw_nick!r}", 1)
        await self._audit("reset-password", row.nick)  # never the password itself
        ended = self._end(
            row.key,
            PASSWORD_RESET,
            "the server's operator reset your password; log in again with the new one",
        )
        return f"new password set for {row.nick}{ended}"


class ModerationActions:
    """``chinwag admin grant``, ``ban``, ``unban`` and ``kick`` (issue 16), as the operator.

    The operator acts as a server admin through the same `Moderation` as the
    clients' commands: the running server's (its members are told, sessions
    end at once), or one loaded from the store when no server runs.
    """

    def __init__(self, moderation: Moderation) -> None:
        self._moderation = moderation

    async def _run(self, action: Moderate | Grant) -> None:
        try:
            if isinstance(action, Grant):
                await self._moderation.grant(OPERATOR, action)
            else:
                await self._moderation.moderate(OPERATOR, action)
        except ChatError as exc:
            status = 2 if exc.code in ("bad_request", "bad_nick", "bad_room") else 1
            raise ActionRefused(exc.message, status) from None

    async def grant(self, nick: str, role: str, room: str | None) -> str:
        """Give ``nick`` a role: admin/member of the server, or mod/member of ``room``."""
        await self._run(Grant(room=room, nick=nick, role=role))
        where = f"#{room}" if room else "the server"
        return f"{nick} is now {role} of {where}"

    async def moderate(
        self, action: str, nick: str, room: str | None, until_ms: int | None, reason: str
    ) -> str:
        """``kick``, ``ban`` or ``unban`` ``nick`` in ``room`` (None: server-wide)."""
        await self._run(
            Moderate(action=action, room=room, nick=nick, until_ms=until_ms, reason=reason)
        )
        where = f"#{room}" if room else "the server"
        done = {"kick": "kicked from", "ban": "banned from", "unban": "unbanned from"}[action]
        return f"{nick} {done} {where}"
