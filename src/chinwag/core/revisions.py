"""Edits, deletions and reactions (protocol §8): events about earlier messages.

Each is checked here, then stored like a message (`Posting.post_event`: cid
dedupe, flood control, ack, bus), as a row of the one event stream with the
conversation of its target, so the same sessions see it, in id order, live and
in the backlog alike.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from chinwag.config import Settings
from chinwag.core.moderation import Moderation
from chinwag.core.posting import Extra, Posting
from chinwag.core.rules import check_body, one_line
from chinwag.core.sessions import Session, charge
from chinwag.errors import BadRequest, Forbidden, NotFound
from chinwag.protocol.events import Delete, Edit, React
from chinwag.storage.base import Store, StoredMessage

_ZWJ = "\u200d"


def _extends(char: str) -> bool:
    """Whether ``char`` continues a grapheme cluster rather than starting one.

    The stdlib has no grapheme segmentation (UAX #29); this covers what emoji
    use: combining marks, variation selectors, skin tones and tag characters.
    """
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tags (subdivision flags)
        or code == 0x20E3  # combining enclosing keycap
    )


def check_reaction(reaction: str, most: int) -> None:
    """Raises `BadRequest` unless ``reaction`` is 1 to ``most`` code points of visible text.

    A reaction is one emoji or symbol (👍, 👩‍💻, a flag), or a short text (``lol``,
    ``+1``, ``l😃l``: Matrix allows any key): no spaces, no control or invisible
    characters, except what emoji sequences are made of (joiners, variation
    selectors, skin tones, tags), and neither starting with one of those nor
    ending with a joiner (ircmsg; it was one grapheme cluster of 1-8 code points).
    """
    if not 1 <= len(reaction) <= most:
        raise BadRequest(f"a reaction is 1-{most} characters: an emoji, a symbol or a short text")
    if _extends(reaction[0]) or reaction[0] == _ZWJ:
        raise BadRequest("a reaction must start with a visible character")
    if reaction[-1] == _ZWJ:
        raise BadRequest("a reaction must not end with a joiner")
    for char in reaction:
        if char != _ZWJ and not _extends(char) and unicodedata.category(char)[0] in "CZ":
            raise BadRequest("a reaction has no spaces, control or invisible characters")


def _conversation(
    session: Session, target: StoredMessage
) -> tuple[str | None, tuple[str, str] | None]:
    """(room, DM other party) of an event about ``target``, from the actor's side."""
    if target.room is not None:
        return target.room, None
    pid = session.principal.pid
    if target.sender == pid:
        return None, (target.recipient or "", target.recipient_nick or "")
    return None, (target.sender, target.sender_nick)


def _visible(session: Session, target: StoredMessage) -> bool:
    """Whether this session may see ``target`` now (its room's member, or a party to the DM)."""
    p = session.principal
    if target.room is not None:
        return target.room in p.rooms
    return p.pid in (target.sender, target.recipient)


class Revisions:
    """Edit, delete, react: checks, then `Posting.post_event`.

    Args:
        settings: limits (``edit_window``, ``mention_limit``).
        store: where the target message is read.
        posting: stores the event, acks it, publishes it.
        clock: wall clock in seconds (the edit window).
    """

    def __init__(
        self, settings: Settings, store: Store, posting: Posting, clock: Callable[[], float]
    ) -> None:
        self.settings = settings
        self._store = store
        self._posting = posting
        self._clock = clock
        self._moderation: Moderation | None = None  # who else may delete; set by the hub

    async def _target(self, session: Session, message_id: int) -> StoredMessage:
        """Pay for the command, then the message ``message_id`` if this session may see it.

        Paid first, so that refused edits, deletions and reactions cost like
        accepted ones (each reads the store).

        Raises:
            RateLimited: over the budget.
            NotFound: no such message, or one this session may not see now.
        """
        charge(session, 1.0)
        target = await self._store.get_message(message_id)
        if target is not None and _visible(session, target):
            return target
        raise NotFound(f"there is no message {message_id} that you can see")

    async def edit(self, session: Session, cmd: Edit) -> None:
        """Replace the body of one's own message, within the edit window."""
        check_body(cmd.body)
        target = await self._target(session, cmd.id)
        if target.sender != session.principal.pid:
            raise Forbidden("only its sender may edit a message", reason="not_sender")
        if target.deleted:
            raise Forbidden("that message is deleted", reason="deleted")
        if target.room is not None and self._moderation is not None:
            self._moderation.check_say(session.principal, target.room)  # muted: no edits either
        age = self._clock() - target.ts_ms / 1000
        if age > self.settings.edit_window:
            raise Forbidden(
                f"a message can be edited for {self.settings.edit_window:g} s after sending",
                reason="edit_window",
            )
        room, to = _conversation(session, target)
        if room is not None:
            now = await self._posting.mentions_in(cmd.body, room=room)
        else:
            parties = ((target.sender, target.sender_nick),) + (
                ((target.recipient, target.recipient_nick or ""),) if target.recipient else ()
            )
            now = self._posting.mentions_in_dm(cmd.body, parties)
        # Only people the edit newly mentions are told (protocol §8).
        fresh = tuple(n for n in now if n not in target.mentions)
        await self._posting.post_event(
            session,
            cmd.ref,
            cmd.cid,
            cmd.body,
            Extra(kind="edit", target=target.id, mentions=fresh),
            room=room,
            to=to,
        )

    async def delete(self, session: Session, cmd: Delete) -> None:
        """Delete a message: its body is erased from storage.

        Its sender may; so may a mod or the owner of its room (while in it),
        and a server admin any room's message (issue 16). Those deletions are
        audited.
        """
        p = session.principal
        charge(session, 1.0)  # first, as `_target`: refused ones cost too
        target = await self._store.get_message(cmd.id)
        moderator = (
            target is not None
            and target.room is not None
            and target.sender != p.pid
            and self._moderation is not None
            and (target.room in p.rooms or self._moderation.is_admin(p.pid))
            and self._moderation.may_delete(p.pid, target.room)
        )
        if target is None or not (moderator or _visible(session, target)):
            raise NotFound(f"there is no message {cmd.id} that you can see")
        if target.sender != p.pid and not moderator:
            raise Forbidden(
                "only its sender, a mod of its room or an admin may delete a message",
                reason="not_sender",
            )
        if target.deleted:
            raise Forbidden("that message is already deleted", reason="deleted")
        if cmd.reason:  # issue 19: kept as the deletion's body, told with it
            self._check_delete_reason(cmd.reason)
        if moderator and self._moderation is not None and target.room is not None:
            self._moderation.check_outranks(p.pid, target.room, target.sender, target.sender_nick)
        room, to = _conversation(session, target)
        await self._posting.post_event(
            session,
            cmd.ref,
            cmd.cid,
            cmd.reason or "",
            Extra(kind="delete", target=target.id),
            room=room,
            to=to,
        )
        if moderator and self._moderation is not None:
            await self._moderation.audited_delete(p, target.room, target.id, target.sender_nick)

    def _check_delete_reason(self, reason: str) -> None:
        """Raises `BadRequest` unless a deletion's reason is one short line (issue 19)."""
        most = self.settings.moderation_reason_max
        if len(reason) > most:
            raise BadRequest(f"a reason is at most {most} characters, not {len(reason)}")
        if not one_line(reason):
            raise BadRequest("a reason is one line without control characters")

    async def react(self, session: Session, cmd: React) -> None:
        """Put this person's reaction on a message on or off (one per emoji)."""
        check_reaction(cmd.emoji, self.settings.reaction_max_length)
        target = await self._target(session, cmd.id)
        if target.deleted:
            raise Forbidden("that message is deleted", reason="deleted")
        if cmd.on:
            if target.room is not None and self._moderation is not None:
                # rooms4: a mute stops reactions too (taking one's own off is never refused).
                self._moderation.check_muted(
                    session.principal, target.room, "; a mute stops reactions too"
                )
            await self._check_reaction_limits(session, target.id, cmd.emoji)
        room, to = _conversation(session, target)
        kind = "react" if cmd.on else "unreact"
        await self._posting.post_event(
            session,
            cmd.ref,
            cmd.cid,
            cmd.emoji,
            Extra(kind=kind, target=target.id),
            room=room,
            to=to,
        )

    async def _check_reaction_limits(self, session: Session, message_id: int, emoji: str) -> None:
        """Raises `Forbidden` (``limit``) when this person has ``reactions_per_person_max``
        other reactions on the message already, or the message has ``reactions_per_message_max``
        (audit4: else they grow without end, and every reply that carries the message)."""
        mine, count = await self._store.reactions_on(message_id, session.principal.pid)
        if emoji in mine:
            return  # on already: putting it on again adds nothing
        most = self.settings.reactions_per_person_max
        if len(mine) >= most:
            raise Forbidden(
                f"you have {len(mine)} reactions on this message, the most there can be:"
                " take one off first",
                reason="limit",
            )
        if count >= self.settings.reactions_per_message_max:
            raise Forbidden(
                f"this message has {count} reactions, the most it can hold: no more can go on",
                reason="limit",
            )


__all__ = ["Revisions", "check_reaction"]
