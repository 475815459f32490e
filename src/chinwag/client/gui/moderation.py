"""Moderation in the desktop app (issue 16, protocol §11 and §12): what the window knows
of each room's settings and of the people acted on, the words it says about it, and the
two small windows of its own (room settings, blocked people).

Everything here runs on Tk's thread. :class:`RoomRules` is pure state fed by the
library's events; the app asks it which actions to offer, and the server has the
last word (a refusal is said in plain words by :func:`refusal_text`).
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from tkinter import ttk
from typing import Final

from chinwag.client.events import Moderated, RoomDetails, fold_nick
from chinwag.client.gui.theme import Theme
from chinwag.errors import ChatError

__all__ = [
    "DURATIONS",
    "GOVERNORS",
    "MODERATORS",
    "BlockedDialog",
    "MemberAction",
    "RoomRules",
    "RoomSettingsDialog",
    "moderated_text",
    "refusal_text",
    "when_text",
]

DURATIONS: Final[tuple[tuple[str, timedelta | None], ...]] = (
    ("for 10 minutes", timedelta(minutes=10)),
    ("for 1 hour", timedelta(hours=1)),
    ("for 1 day", timedelta(days=1)),
    ("for ever", None),
)
"""How long a ban or a mute lasts, as the member menu offers it (None: until lifted)."""

MODERATORS: Final = frozenset({"mod", "owner", "admin"})
"""Room roles that may kick, ban, mute and invite (§12)."""
GOVERNORS: Final = frozenset({"owner", "admin"})
"""Room roles that may make moderators and change privacy and announce (§12)."""

ROLE_WORDS: Final = {
    "owner": "you own it",
    "mod": "you moderate it",
    "admin": "you are a server admin",
}


@dataclass(frozen=True, slots=True)
class MemberAction:
    """One entry of a member's context menu.

    ``action`` is ``kick``, ``ban``, ``unban``, ``mute``, ``unmute``, ``mod``, ``member``,
    ``invite`` (with ``room`` the room to invite to), ``block`` or ``unblock``;
    ``room`` is the room acted in (None for blocks).
    """

    action: str
    label: str
    room: str | None = None
    asks: bool = False
    """It opens a form first (a reason, and for bans and mutes a duration)."""


@dataclass(slots=True)
class RoomRules:
    """What the window knows about each room's governance and about blocks."""

    details: dict[str, RoomDetails] = field(default_factory=dict)
    mods: dict[str, set[str]] = field(default_factory=dict)
    muted: dict[str, set[str]] = field(default_factory=dict)
    banned: dict[str, set[str]] = field(default_factory=dict)
    """Per room, the folded nicks seen banned there since login (for "Unban")."""
    blocked: dict[str, str] = field(default_factory=dict)
    """Folded nick -> the nick as blocked, in the order the server listed them."""

    def role(self, room: str) -> str:
        """Our role in ``room`` (``member`` when the server has not said).

        A server admin is one in every room: once any join said ``admin``, the
        lobby (joined by the login itself, so never answered with a role) is
        theirs too.
        """
        details = self.details.get(room.lower())
        if details is not None and details.role:
            return details.role
        if any(d.role == "admin" for d in self.details.values()):
            return "admin"
        return "member"

    def on_details(self, event: RoomDetails) -> RoomDetails | None:
        """Keep a room's settings; returns the previous ones (None: first seen).

        A change (``by`` set) carries no role: ours stays what the join said.
        """
        room = event.room.lower()
        old = self.details.get(room)
        role = event.role or (old.role if old is not None else None)
        self.details[room] = replace(event, role=role)
        return old

    def on_moderated(self, event: Moderated, me: bool) -> None:
        """Follow who is a mod and who is muted, and our own role."""
        room, key = event.room.lower(), fold_nick(event.nick)
        if event.action == "grant" and event.role is not None:
            mods = self.mods.setdefault(room, set())
            if event.role == "mod":
                mods.add(key)
            else:
                mods.discard(key)
            details = self.details.get(room)
            if me and details is not None and details.role != "admin":
                self.details[room] = replace(details, role=event.role)
        elif event.action == "mute":
            self.muted.setdefault(room, set()).add(key)
        elif event.action in ("unmute", "kick", "ban"):
            self.muted.get(room, set()).discard(key)
        if event.action == "ban":
            self.banned.setdefault(room, set()).add(key)
        elif event.action == "unban":
            self.banned.get(room, set()).discard(key)
        if me and event.action in ("kick", "ban"):
            self.details.pop(room, None)

    def set_blocked(self, nicks: Sequence[str]) -> None:
        """The server's list of the nicks we block."""
        self.blocked = {fold_nick(n): n for n in nicks}

    def subtitle(self, room: str, online: int | None) -> str:
        """The header's second line: topic, badges, our role, who is online."""
        parts: list[str] = []
        details = self.details.get(room.lower())
        if details is not None:
            if details.topic:
                parts.append(details.topic)
            if details.private:
                parts.append("private")
            if details.announce:
                parts.append("announce only")
            if details.role in ROLE_WORDS:
                parts.append(ROLE_WORDS[details.role])
        parts.append(f"{online} online" if online is not None else "Room")
        return " · ".join(parts)

    def can_edit_settings(self, room: str) -> bool:
        """Whether we may change anything of the room (its topic at least), and know
        its settings to start from."""
        return room.lower() in self.details and self.role(room) in MODERATORS

    def member_actions(
        self, room: str | None, nick: str, *, my_rooms: Sequence[str], guest: bool = False
    ) -> list[MemberAction]:
        """What we may do to ``nick`` seen in ``room`` (None: in a DM).

        Only what our role allows (§12): nothing is offered that the server would
        refuse for our role; a rank the window cannot see (they are a mod too)
        is still the server's to refuse. ``guest``: they are known to have no
        account (a guest gets no role, so nobody is offered to make them a mod).
        """
        key = fold_nick(nick)
        actions: list[MemberAction] = []
        if room is not None:
            role = self.role(room)
            here = f"#{room}"
            if role in MODERATORS:
                if room != "lobby":
                    actions.append(MemberAction("kick", f"Kick from {here}…", room, True))
                    actions.append(MemberAction("ban", f"Ban from {here}", room, True))
                if key in self.muted.get(room, set()):
                    actions.append(MemberAction("unmute", f"Unmute in {here}", room))
                else:
                    actions.append(MemberAction("mute", f"Mute in {here}", room, True))
            if role in GOVERNORS and room != "lobby" and not guest:  # a guest gets no role
                if key in self.mods.get(room, set()):
                    actions.append(MemberAction("member", f"Make a member of {here}", room))
                else:
                    actions.append(MemberAction("mod", f"Make a moderator of {here}", room))
        for other in my_rooms:
            if key in self.banned.get(other, set()) and self.role(other) in MODERATORS:
                actions.append(MemberAction("unban", f"Unban from #{other}", other))
        for other in my_rooms:
            details = self.details.get(other.lower())
            if (
                other != room
                and details is not None
                and details.private
                and self.role(other) in MODERATORS
            ):
                actions.append(MemberAction("invite", f"Invite to #{other}", other))
        if key in self.blocked:
            actions.append(MemberAction("unblock", f"Unblock {nick}"))
        else:
            actions.append(MemberAction("block", f"Block {nick}"))
        return actions


def when_text(until: datetime, local: Callable[[datetime], datetime], now: datetime) -> str:
    """A time in local time: ``14:05`` today, ``3 Dec 14:05`` another day."""
    at, today = local(until), local(now)
    if at.date() == today.date():
        return at.strftime("%H:%M")
    return f"{at.day} {at.strftime('%b %H:%M')}"


def moderated_text(
    event: Moderated,
    *,
    me: bool,
    local: Callable[[datetime], datetime],
    now: datetime,
) -> str:
    """A moderation event in plain words: "bob was muted by olga until 14:05: spam"."""
    who = "You" if me else event.nick
    were = "were" if me else "was"
    room = f"#{event.room}"
    match event.action:
        case "kick":
            text = f"{who} {were} kicked out of {room} by {event.by}"
        case "ban":
            text = f"{who} {were} banned from {room} by {event.by}"
        case "unban":
            text = f"{who} may join {room} again: {event.by} lifted the ban"
        case "mute":
            text = f"{who} {were} muted in {room} by {event.by}"
        case "unmute":
            text = f"{who} may speak in {room} again: {event.by} lifted the mute"
        case "voice":  # ircroles
            text = f"{who} may speak in {room} while it is for announcements: {event.by} said so"
        case "unvoice":
            text = f"{who} no longer speak{'' if me else 's'} in {room} while it is for"
            text += f" announcements: {event.by} said so"
        case "invite":
            text = f"{who} {were} invited to {room} by {event.by}"
        case "grant" if event.role == "mod":
            text = f"{who} {were} made a moderator of {room} by {event.by}"
        case "grant":
            text = f"{who} {were} made a {event.role or 'member'} of {room} by {event.by}"
        case _:
            text = f"{event.by} did “{event.action}” to {event.nick} in {room}"
    if event.action in ("ban", "mute"):
        text += (
            " for ever" if event.until is None else f" until {when_text(event.until, local, now)}"
        )
    if event.reason:
        text += f": {event.reason}"
    return text


def refusal_text(
    error: BaseException,
    room: str | None,
    *,
    local: Callable[[datetime], datetime],
    now: datetime,
) -> str:
    """A server's refusal in plain words: "you are muted in #games until 14:05"."""
    if not isinstance(error, ChatError):
        return "not connected; try again once the connection is back"
    reason = error.extra.get("reason")
    where = f"#{room}" if room else "this room"
    until: datetime | None = None
    raw = error.extra.get("until")
    if isinstance(raw, str):
        try:
            until = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            until = None
    end = "until it is lifted" if until is None else f"until {when_text(until, local, now)}"
    match error.code, reason:
        case "forbidden", "muted":
            return f"you are muted in {where} {end}"
        case "forbidden", "banned":
            return f"you are banned from {where} {end}"
        case "forbidden", "private":
            return f"{where} is private: ask its owner or a moderator for an invite"
        case "forbidden", "announce":
            return f"only the owner and moderators may speak in {where}"
        case "forbidden", "rank":
            return "they rank as high as you or higher: ask the room's owner or an admin"
        case "forbidden", "not_allowed":
            return f"your role in {where} does not allow that"
        case "forbidden", "not_admin":
            return "only a server admin may do that"
        case "forbidden", "lobby":
            return "not in the lobby: everyone is always in it (a server admin can ban)"
        case "forbidden", "guest":
            return "guests have no role: register your nick first (Account menu)"
        case "forbidden", "limit":
            return f"{where} keeps as many bans, mutes, invites and mods as it may: lift one first"
        case "forbidden", "too_many_blocks":
            return "you block as many people as the server allows: unblock someone first"
        case "no_such_user", _:
            return "nobody by that nick is registered or online"
    return error.message


class RoomSettingsDialog(tk.Toplevel):
    """A room's topic, privacy, announce-only, own retention, key and member limit, for its
    owner and moderators.

    What the role may not change is shown but disabled (a moderator sets the topic,
    the key and the limit). The retention is days, empty for none of the room's own
    (protocol §12.3); the key and the limit empty for none (§12.6). Save hands the
    changed values to ``on_submit``; the app closes the window when the server says
    ``ok`` or shows its refusal under the form.
    """

    def __init__(
        self,
        parent: tk.Misc,
        theme: Theme,
        details: RoomDetails,
        *,
        governs: bool,
        on_submit: Callable[
            [str | None, bool | None, bool | None, int | None, str | None, int | None], None
        ],
    ) -> None:
        super().__init__(parent)
        self.withdraw()
        self.title(f"#{details.room} settings")
        self.transient(parent.winfo_toplevel())
        self.resizable(False, False)
        self.configure(background=theme.palette.surface)
        self.details = details
        self._on_submit = on_submit
        px = theme.px
        frame = ttk.Frame(self, style="Surface.TFrame", padding=px(20))
        frame.pack(fill="both", expand=True)
        ttk.Label(frame, text=f"#{details.room} settings", style="Header.TLabel").grid(
            row=0, column=0, sticky="w"
        )
        ttk.Label(frame, text="Topic", style="CardHeading.TLabel").grid(
            row=1, column=0, sticky="w", pady=(px(12), px(4))
        )
        self.topic_var = tk.StringVar(self, value=details.topic)
        self.topic_entry = ttk.Entry(frame, textvariable=self.topic_var, width=40)
        self.topic_entry.grid(row=2, column=0, sticky="ew")
        self.private_var = tk.BooleanVar(self, value=details.private)
        self.private_check = ttk.Checkbutton(
            frame, text="Private: only invited people may join", variable=self.private_var
        )
        self.private_check.grid(row=3, column=0, sticky="w", pady=(px(12), 0))
        self.announce_var = tk.BooleanVar(self, value=details.announce)
        self.announce_check = ttk.Checkbutton(
            frame,
            text="Announce only: only the owner and moderators speak",
            variable=self.announce_var,
        )
        self.announce_check.grid(row=4, column=0, sticky="w", pady=(px(6), 0))
        keep = ttk.Frame(frame, style="Surface.TFrame")
        keep.grid(row=5, column=0, sticky="w", pady=(px(10), 0))
        ttk.Label(keep, text="Keep messages for", style="Card.TLabel").pack(side="left")
        days = "" if details.retention_days is None else str(details.retention_days)
        self.retention_var = tk.StringVar(self, value=days)
        self.retention_entry = ttk.Entry(keep, textvariable=self.retention_var, width=6)
        self.retention_entry.pack(side="left", padx=px(6))
        ttk.Label(keep, text="days (empty: as the server keeps them)", style="Card.TLabel").pack(
            side="left"
        )
        lock = ttk.Frame(frame, style="Surface.TFrame")  # ircmodes: key and member limit
        lock.grid(row=6, column=0, sticky="w", pady=(px(10), 0))
        ttk.Label(lock, text="Key to join", style="Card.TLabel").pack(side="left")
        self.key_var = tk.StringVar(self, value=details.key or "")
        self.key_entry = ttk.Entry(lock, textvariable=self.key_var, width=14)
        self.key_entry.pack(side="left", padx=px(6))
        ttk.Label(lock, text="At most", style="Card.TLabel").pack(side="left", padx=(px(8), 0))
        limit = "" if details.limit is None else str(details.limit)
        self.limit_var = tk.StringVar(self, value=limit)
        self.limit_entry = ttk.Entry(lock, textvariable=self.limit_var, width=6)
        self.limit_entry.pack(side="left", padx=px(6))
        ttk.Label(lock, text="online (empty: no key, no limit)", style="Card.TLabel").pack(
            side="left"
        )
        hint = "" if governs else "Only the room's owner or an admin may change privacy,"
        hint += "" if governs else " announce-only and retention."
        if not governs:
            self.private_check.state(["disabled"])
            self.announce_check.state(["disabled"])
            self.retention_entry.state(["disabled"])
        ttk.Label(frame, text=hint, style="CardMuted.TLabel").grid(row=7, column=0, sticky="w")
        self.general = ttk.Label(frame, text="", style="Error.TLabel", wraplength=px(360))
        self.general.grid(row=8, column=0, sticky="w", pady=(px(8), 0))
        buttons = ttk.Frame(frame, style="Surface.TFrame")
        buttons.grid(row=9, column=0, sticky="e", pady=(px(12), 0))
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.close)
        self.cancel_button.pack(side="right")
        self.save_button = ttk.Button(
            buttons, text="Save", style="Accent.TButton", command=self.submit
        )
        self.save_button.pack(side="right", padx=(0, px(8)))
        self.bind("<Return>", lambda _e: self.submit())
        self.bind("<Escape>", lambda _e: self.close())
        self.protocol("WM_DELETE_WINDOW", self.close)
        self.closed = False
        self.deiconify()
        self.topic_entry.focus_set()

    def submit(self) -> None:
        """Hand over what changed (None for what did not); nothing changed closes."""
        if self.closed:
            return
        self.general.configure(text="")
        topic = self.topic_var.get().strip()
        private, announce = bool(self.private_var.get()), bool(self.announce_var.get())
        typed = self.retention_var.get().strip()
        if typed and not (typed.isdigit() and int(typed) > 0):
            self.general.configure(
                text="Keep messages for: a whole number of days, or empty for the server's setting."
            )
            return
        days = int(typed) if typed else None
        most = self.limit_var.get().strip()
        if most and not (most.isascii() and most.isdigit() and int(most) > 0):
            self.general.configure(text="At most: a whole number of people, or empty for none.")
            return
        limit = int(most) if most else None
        key = self.key_var.get().strip()
        changes = (
            topic if topic != self.details.topic else None,
            private if private != self.details.private else None,
            announce if announce != self.details.announce else None,
            (days or 0) if days != self.details.retention_days else None,
            key if key != (self.details.key or "") else None,
            (limit or 0) if limit != self.details.limit else None,
        )
        if changes == (None,) * len(changes):
            self.close()
            return
        self.save_button.state(["disabled"])
        self._on_submit(*changes)

    def show_error(self, text: str) -> None:
        """Say why the server refused; the form stays as the user left it."""
        self.general.configure(text=text)
        self.save_button.state(["!disabled"])

    def close(self) -> None:
        """Close the window."""
        if not self.closed:
            self.closed = True
            self.destroy()


class BlockedDialog(tk.Toplevel):
    """ "Blocked people": the nicks we block, each with an Unblock button's worth of list."""

    def __init__(self, parent: tk.Misc, theme: Theme, on_unblock: Callable[[str], None]) -> None:
        super().__init__(parent)
        self.withdraw()
        self.title("Blocked people")
        self.transient(parent.winfo_toplevel())
        self.configure(background=theme.palette.surface)
        self._on_unblock = on_unblock
        px = theme.px
        frame = ttk.Frame(self, style="Surface.TFrame", padding=px(20))
        frame.pack(fill="both", expand=True)
        frame.columnconfigure(0, weight=1)
        ttk.Label(frame, text="Blocked people", style="Header.TLabel").grid(
            row=0, column=0, sticky="w"
        )
        self.intro = ttk.Label(
            frame,
            text="Nothing they send reaches you, on any device. They are not told.",
            style="CardMuted.TLabel",
            wraplength=px(360),
        )
        self.intro.grid(row=1, column=0, sticky="w", pady=(px(4), px(8)))
        self.listbox = tk.Listbox(
            frame, height=8, exportselection=False, font=theme.fonts["body"], relief="flat"
        )
        self.listbox.grid(row=2, column=0, sticky="nsew")
        self.general = ttk.Label(frame, text="Loading…", style="CardMuted.TLabel")
        self.general.grid(row=3, column=0, sticky="w", pady=(px(6), 0))
        buttons = ttk.Frame(frame, style="Surface.TFrame")
        buttons.grid(row=4, column=0, sticky="e", pady=(px(12), 0))
        self.close_button = ttk.Button(buttons, text="Close", command=self.close)
        self.close_button.pack(side="right")
        self.unblock_button = ttk.Button(buttons, text="Unblock", command=self.unblock)
        self.unblock_button.pack(side="right", padx=(0, px(8)))
        self.bind("<Escape>", lambda _e: self.close())
        self.protocol("WM_DELETE_WINDOW", self.close)
        self._nicks: list[str] = []
        self.closed = False
        self.deiconify()

    def set_nicks(self, nicks: Sequence[str]) -> None:
        """Show the list (the server's, oldest block first)."""
        self._nicks = list(nicks)
        self.listbox.delete(0, "end")
        for nick in self._nicks:
            self.listbox.insert("end", nick)
        self.general.configure(
            text="You block nobody." if not nicks else "Pick someone, then Unblock.",
            style="CardMuted.TLabel",
        )

    def rows(self) -> list[str]:
        """The nicks listed (for tests)."""
        return list(self._nicks)

    def show_error(self, text: str) -> None:
        """Say what went wrong."""
        self.general.configure(text=text, style="Error.TLabel")

    def unblock(self) -> None:
        """Unblock the picked nick."""
        picked: tuple[int, ...] = self.listbox.curselection()  # type: ignore[no-untyped-call]
        if not picked:
            self.show_error("Pick someone in the list first.")
            return
        self._on_unblock(self._nicks[picked[0]])

    def close(self) -> None:
        """Close the window."""
        if not self.closed:
            self.closed = True
            self.destroy()
