"""Operators, whois and wallops (issue 19, ircoper).

- ``oper``: a session names a server admin's account and its password (checked
  as a login is: argon2id under the same throttle); from then until it ends (or
  says ``oper`` with no account) it acts with that admin's rights. The elevation
  is the session's alone, kept in memory (`Session.oper`), and audited
  ("X opered as Y"); taking the admin role away ends it at once, since each check
  asks whether the account is an admin still (`Moderation.is_admin`).
- ``whois``: the people online now whose nick matches a mask, here and on the
  other nodes; at most ``who_reply_max``. A block does not hide the blocker (the
  blocked one is not told of a block, protocol §11, and MONITOR does not hide either).
- ``wallops``: an admin's line to every session listening for it (IRC user mode
  ``+w``) and every opered session, on every node (`WallopsSent`).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

from chinwag.bus.base import InvisibleSet, WallopsSent
from chinwag.config import Settings
from chinwag.core.accounts import LoginThrottle, PasswordHasher, check_login, parse_nick
from chinwag.core.moderation import Moderation
from chinwag.core.rooms import REPLY_BYTES_PER_TOKEN
from chinwag.core.rules import one_line
from chinwag.core.sessions import (
    Frame,
    OnlineRegistry,
    Principal,
    RemotePrincipal,
    Session,
    account_pid,
    irc_ident,
    is_oper,
    ok,
    reply,
)
from chinwag.errors import BadNick, BadPassword, BadRequest, Forbidden
from chinwag.protocol.events import (
    Invisible,
    ListenWallops,
    Oper,
    Wallops,
    WallopsNotice,
    Whois,
    WhoisReply,
    WhoMember,
)
from chinwag.protocol.masks import wildcard_match
from chinwag.storage.base import AuditEntry, Store


class Operators:
    """``oper``, ``whois``, ``wallops`` and ``wallops_listen``.

    Args:
        settings: ``who_reply_max``, ``wallops_max_length``.
        store: accounts (the password checked) and the audit log.
        hasher: argon2id, off the event loop.
        throttle: the login throttle, which ``oper`` shares.
        registry: who is online here, and the view of the other nodes.
        moderation: who is an admin.
        clock: wall clock in seconds (audit times).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        registry: OnlineRegistry,
        moderation: Moderation,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._store = store
        self._hasher = hasher
        self._throttle = throttle
        self._registry = registry
        self._moderation = moderation
        self._clock = clock

    # -- oper --
    async def oper(self, session: Session, cmd: Oper) -> None:
        """Act as the admin ``cmd.account`` from now on (no account: stop).

        Raises:
            BadPassword: no such account, or the wrong password (one answer for both).
            Forbidden: the account is not a server admin (``not_admin``).
            RateLimited: the login throttle; nothing checked.
        """
        if cmd.account is None:
            session.oper = None
            ok(session, cmd.ref)
            return
        try:
            nick = parse_nick(cmd.account)
        except BadNick:
            nick = None
        row = None if nick is None else await self._store.get_account(nick.key)
        if row is not None and row.deleted:
            row = None
        verdict = await check_login(
            self._hasher,
            self._throttle,
            None if row is None else row.key,
            session.outlet.address,
            None if row is None else row.password_hash,
            cmd.password or "",
        )
        if row is None or not verdict.ok:
            raise BadPassword("no admin account has that name and password")
        pid = account_pid(row.key)
        if not self._moderation.is_admin(pid):
            raise Forbidden(f"{row.nick} is not a server admin", reason="not_admin")
        session.oper = pid
        p = session.principal
        entry = AuditEntry(int(self._clock() * 1000), p.nick, "oper", None, row.nick)
        await self._store.add_audit(entry)
        ok(session, cmd.ref)

    # -- whois --
    def whois(self, session: Session, cmd: Whois) -> None:
        """Reply with who is online whose nick matches ``cmd.mask`` (a bad mask: nobody)."""
        asker = session.principal
        found: dict[str, Principal | RemotePrincipal] = {}
        registry = self._registry
        if "*" in cmd.mask or "?" in cmd.mask:
            mask = cmd.mask.casefold()
            for p in registry.by_key.values():
                if wildcard_match(mask, p.nick.casefold()):
                    found[p.pid] = p
            for view in registry.remote.nodes.values():
                for r in view.by_key.values():
                    if r.pid not in found and wildcard_match(mask, r.nick.casefold()):
                        found[r.pid] = r
        else:
            try:
                key = parse_nick(cmd.mask).key
            except BadNick:
                key = ""
            one = registry.by_key.get(key) or (registry.remote.find(key) if key else None)
            if one is not None:
                found[one.pid] = one
        # Someone invisible is found by a mask only by those in a room with them.
        masked = "*" in cmd.mask or "?" in cmd.mask
        people = [
            p
            for p in found.values()
            if not (masked and p.invisible and p.pid != asker.pid and not p.rooms & asker.rooms)
        ]
        most = self.settings.who_reply_max
        listed = heapq.nsmallest(most, people, key=lambda m: m.nick.casefold())
        users = tuple(
            WhoMember(
                nick=m.nick,
                account=m.account,
                bot=m.bot,
                away=m.away,
                user=ident.user if ident is not None else None,
                real_name=ident.real_name if ident is not None else None,
                oper=is_oper(m, self._moderation.is_admin),
            )
            for m, ident in ((m, irc_ident(m)) for m in listed)
        )
        session.bucket.take(sum(32 + len(m.nick) for m in listed) / REPLY_BYTES_PER_TOKEN)
        truncated = len(people) > most
        reply(session, WhoisReply(mask=cmd.mask, users=users, truncated=truncated, ref=cmd.ref))

    # -- wallops --
    def wallops(self, session: Session, cmd: Wallops) -> None:
        """Send an admin's line to every listening session, here and on the other nodes.

        Raises:
            Forbidden: the session does not act as an admin (``not_admin``).
            BadRequest: empty, too long or not one line; nothing sent.
        """
        p = session.principal
        if not self._moderation.is_admin(p.pid):
            raise Forbidden("only a server admin may send wallops", reason="not_admin")
        text = cmd.text
        most = self.settings.wallops_max_length
        if not text or len(text) > most:
            raise BadRequest(f"a wallops is 1 to {most} characters, not {len(text)}")
        if not one_line(text):
            raise BadRequest("a wallops is one line without control characters")
        ok(session, cmd.ref)
        self._registry.announce(WallopsSent(self._registry.node, p.nick, text))
        self._deliver(p.nick, text)

    def heard(self, event: WallopsSent) -> None:
        """Another node's wallops: to the listening sessions here."""
        self._deliver(event.nick, event.text)

    def _deliver(self, sender: str, text: str) -> None:
        frame = Frame(WallopsNotice(sender=sender, text=text))
        is_admin = self._moderation.is_admin
        for s in self._registry.sessions():
            if s.wallops or (s.oper is not None and is_admin(s.oper)):
                s.deliver(0, frame)

    def listen(self, session: Session, cmd: ListenWallops) -> None:
        """Whether this session gets wallops from now on."""
        session.wallops = cmd.on
        ok(session, cmd.ref)

    # -- invisible --
    def invisible(self, session: Session, cmd: Invisible) -> None:
        """Whether whois masks leave the session's principal out (its other nodes too)."""
        p = session.principal
        ok(session, cmd.ref)
        if p.invisible != cmd.on:
            p.invisible = cmd.on
            self._registry.announce(InvisibleSet(self._registry.node, p.pid, cmd.on))

    def heard_invisible(self, e: InvisibleSet) -> None:
        """Another node's principal is (or is no longer) invisible: kept in the view, and
        on the same account's principal here (its state is one)."""
        view = self._registry.remote.nodes.get(e.node)
        remote = view.by_pid.get(e.pid) if view is not None else None
        if remote is not None:
            remote.invisible = e.on
        local = self._registry.by_pid.get(e.pid)
        if local is not None:
            local.invisible = e.on
