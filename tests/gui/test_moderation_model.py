"""The desktop app's moderation state and words (issue 16 item 6), without a window:
which actions each role is offered (both ways), the header line, and plain-words texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from chinwag.client.events import Moderated, RoomDetails, SendFailed
from chinwag.client.gui.model import GuiModel, PendingLine
from chinwag.client.gui.moderation import RoomRules, moderated_text, refusal_text, when_text
from chinwag.client.state import Conversation
from chinwag.errors import ChatError, Forbidden

NOW = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)
PLUS2 = timezone(timedelta(hours=2))


def local(ts: datetime) -> datetime:
    return ts.astimezone(PLUS2)


def rules_as(role: str, *, private: bool = False) -> RoomRules:
    rules = RoomRules()
    rules.on_details(RoomDetails("games", "", private, False, None, role))
    return rules


def labels(rules: RoomRules, room: str | None, nick: str = "bob", **kw: object) -> list[str]:
    guest = bool(kw.get("guest", False))
    return [a.label for a in rules.member_actions(room, nick, my_rooms=["games"], guest=guest)]


def test_a_member_is_offered_only_blocking_and_a_mod_no_roles() -> None:
    assert labels(rules_as("member"), "games") == ["Block bob"]
    assert labels(rules_as("mod"), "games") == [
        "Kick from #games…",
        "Ban from #games",
        "Mute in #games",
        "Block bob",
    ]


def test_an_owner_or_admin_may_make_mods_but_not_of_a_guest() -> None:
    for role in ("owner", "admin"):
        assert labels(rules_as(role), "games")[3:] == ["Make a moderator of #games", "Block bob"]
        assert "Make a moderator of #games" not in labels(rules_as(role), "games", guest=True)


def test_the_menu_follows_grants_mutes_and_blocks() -> None:
    rules = rules_as("owner")
    rules.on_moderated(Moderated("games", "bob", "grant", "olga", role="mod"), me=False)
    rules.on_moderated(Moderated("games", "Bob", "mute", "olga"), me=False)
    rules.set_blocked(["BOB"])
    got = labels(rules, "games")
    assert "Unmute in #games" in got and "Mute in #games" not in got
    assert "Make a member of #games" in got and "Make a moderator of #games" not in got
    assert got[-1] == "Unblock bob"
    rules.on_moderated(Moderated("games", "bob", "unmute", "olga"), me=False)
    assert "Mute in #games" in labels(rules, "games")
    rules.on_moderated(Moderated("games", "bob", "ban", "olga"), me=False)
    assert "Unban from #games" in labels(rules, "lobby")
    onlooker = rules_as("member")
    onlooker.on_moderated(Moderated("games", "bob", "ban", "olga"), me=False)
    assert labels(onlooker, "lobby") == ["Block bob"]
    rules.on_moderated(Moderated("games", "bob", "unban", "olga"), me=False)
    assert "Unban from #games" not in labels(rules, "lobby")


def test_the_lobby_offers_no_kick_or_ban_and_invites_only_to_private_rooms_we_moderate() -> None:
    rules = rules_as("mod", private=True)
    rules.on_details(RoomDetails("lobby", "", False, False, None, "admin"))
    assert labels(rules, "lobby") == ["Mute in #lobby", "Invite to #games", "Block bob"]
    assert labels(rules_as("member", private=True), "lobby") == ["Block bob"]
    admin = rules_as("admin")  # a server admin (said by any join) governs the lobby too
    assert labels(admin, "lobby") == ["Mute in #lobby", "Block bob"]
    assert labels(rules_as("mod", private=False), None) == ["Block bob"]


def test_a_settings_change_keeps_our_role_and_a_grant_or_a_kick_changes_it() -> None:
    rules = rules_as("member")
    rules.on_details(RoomDetails("games", "chess", True, True, "olga"))
    assert rules.role("games") == "member"
    assert rules.subtitle("games", 4) == "chess · private · announce only · 4 online"
    assert not rules.can_edit_settings("games")
    rules.on_moderated(Moderated("games", "me", "grant", "olga", role="mod"), me=True)
    assert (
        rules.subtitle("games", 4) == "chess · private · announce only · you moderate it · 4 online"
    )
    assert rules.can_edit_settings("games")
    rules.on_moderated(Moderated("games", "me", "kick", "olga"), me=True)
    assert rules.role("games") == "member" and rules.subtitle("games", None) == "Room"


def test_times_are_local_and_name_the_day_when_it_is_not_today() -> None:
    assert when_text(NOW + timedelta(minutes=65), local, NOW) == "16:05"
    assert when_text(NOW + timedelta(days=1), local, NOW) == "3 Dec 15:00"


def test_moderation_is_said_in_plain_words() -> None:
    mute = Moderated("games", "bob", "mute", "olga", "spam", NOW + timedelta(minutes=65))
    assert (
        moderated_text(mute, me=False, local=local, now=NOW)
        == "bob was muted in #games by olga until 16:05: spam"
    )
    ban = Moderated("games", "bob", "ban", "olga")
    assert (
        moderated_text(ban, me=True, local=local, now=NOW)
        == "You were banned from #games by olga for ever"
    )
    grant = Moderated("games", "bob", "grant", "olga", role="member")
    assert (
        moderated_text(grant, me=False, local=local, now=NOW)
        == "bob was made a member of #games by olga"
    )
    voice = Moderated("games", "bob", "voice", "olga")  # ircroles
    assert (
        moderated_text(voice, me=False, local=local, now=NOW)
        == "bob may speak in #games while it is for announcements: olga said so"
    )
    unvoice = Moderated("games", "me", "unvoice", "olga")
    assert (
        moderated_text(unvoice, me=True, local=local, now=NOW)
        == "You no longer speak in #games while it is for announcements: olga said so"
    )


def test_refusals_are_said_in_plain_words_with_local_times() -> None:
    muted = Forbidden("you are muted in #games until 2026-12-02 14:05 UTC", reason="muted")
    muted.extra["until"] = "2026-12-02T14:05:00.000Z"
    assert (
        refusal_text(muted, "games", local=local, now=NOW) == "you are muted in #games until 16:05"
    )
    banned = Forbidden("banned", reason="banned", until=None)
    assert (
        refusal_text(banned, "games", local=local, now=NOW)
        == "you are banned from #games until it is lifted"
    )
    rank = Forbidden("rank", reason="rank")
    assert refusal_text(rank, "games", local=local, now=NOW).startswith("they rank as high")
    other = ChatError("something the server said")
    assert refusal_text(other, "games", local=local, now=NOW) == "something the server said"
    assert refusal_text(TimeoutError(), None, local=local, now=NOW).startswith("not connected")


def test_a_message_refused_while_muted_says_so_in_local_time() -> None:
    model = GuiModel("bob", "example:5050", tz=PLUS2)
    model.state.welcome("bob", False, ["lobby", "games"])
    games = Conversation.room("games")
    model.switch(games, "")
    item = model.queue(games, "let me speak")
    model.bind_cid(item.key, "c-1")
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)
    wire = until.isoformat().replace("+00:00", "Z")
    error = Forbidden("you are muted", reason="muted", until=wire)
    model.on_send_failed(SendFailed("c-1", error, "say", "games", "let me speak"))
    at = when_text(until, local, datetime.now(UTC))  # "HH:MM", with the day near midnight
    assert model.items(games)[-1] == PendingLine(
        item.key, "let me speak", "failed", f"not sent: you are muted in #games until {at}"
    )
