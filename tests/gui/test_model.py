"""The desktop app's model and helpers, without a window or a server."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from chinwag.client.events import (
    CaughtUp,
    Changed,
    HistoryPage,
    Message,
    Presence,
    ReadMarker,
    Receipt,
    Renamed,
    SendFailed,
    Sent,
    Status,
    Typing,
    User,
    Welcome,
)
from chinwag.client.gui.chat import day_label
from chinwag.client.gui.model import (
    LOBBY,
    AwayDivider,
    Chip,
    DaySeparator,
    GuiModel,
    LoadEarlier,
    MessageLine,
    NoticeLine,
    PendingLine,
    Quote,
    emoji_from_text,
    explain_login_error,
    split_fences,
    summary_text,
)
from chinwag.client.gui.prefs import MAX_RECENT, PREFS_FILE, Prefs
from chinwag.client.gui.session import LanServer, LanServers, poll_lan
from chinwag.client.state import Conversation
from chinwag.errors import (
    BadNick,
    BadPassword,
    NickTaken,
    NotMember,
    PasswordRequired,
    RateLimited,
    ServerError,
    UnsupportedProto,
    WeakPassword,
)

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
DM_BOB = Conversation.dm("bob")


def msg(
    mid: int,
    sender: str = "bob",
    body: str = "hi",
    *,
    room: str | None = "lobby",
    to: str | None = None,
    at: datetime | None = None,
    replay: bool = False,
    cid: str | None = None,
) -> Message:
    return Message(
        id=mid,
        ts=at or T0 + timedelta(seconds=mid),
        sender=sender,
        body=body,
        room=None if to is not None else room,
        to=to,
        replay=replay,
        own=sender.casefold() == "alice",
        cid=cid,
    )


def logged_in(account: bool = True, rooms: tuple[str, ...] = ("lobby",)) -> GuiModel:
    model = GuiModel("alice", "chat.example:5050", tz=UTC)
    model.on_welcome(Welcome("alice", account, rooms))
    model.on_caught_up(CaughtUp(0))
    model.on_status(Status("connected"), now=0.0)
    return model


# --- text helpers ---------------------------------------------------------------------


def test_fenced_blocks_keep_their_spacing_and_drop_the_fences() -> None:
    board = " X | O |  \n---+---+---\n   | X |  "
    body = f"your move:\n```text\n{board}\n```\ngood luck"
    assert split_fences(body) == [("your move:", False), (board, True), ("good luck", False)]


def test_unclosed_fence_runs_to_the_end_and_one_line_fences_work() -> None:
    assert split_fences("a\n```\nb\nc") == [("a", False), ("b\nc", True)]
    assert split_fences("```x = 1```") == [("x = 1", True)]
    assert split_fences("no code here") == [("no code here", False)]


def test_summary_in_plain_words() -> None:
    assert summary_text(CaughtUp(0)) == "While you were away: nothing new."
    text = summary_text(CaughtUp(4, rooms={"lobby": 1}, dms={"bob": 3}, truncated=True))
    assert text == (
        "While you were away: 4 new messages — 3 from bob, 1 in #lobby. Older ones were left out."
    )


def test_day_labels() -> None:
    today = date(2026, 11, 24)
    assert day_label(today, today) == "Today"
    assert day_label(date(2026, 11, 23), today) == "Yesterday"
    assert day_label(date(2026, 11, 3), today) == "Tuesday 3 November"
    assert day_label(date(2025, 11, 3), today) == "Monday 3 November 2025"


# --- messages, unread, title -------------------------------------------------------------


def test_a_message_delivered_twice_is_shown_once_and_counted_once() -> None:
    model = logged_in()
    assert model.on_message(msg(1, to="alice")) is not None
    assert model.on_message(msg(1, to="alice")) is None
    assert [e.unread for e in model.sidebar()[1]] == [1]
    assert model.title() == "(1) #lobby — chinwag"


def test_unread_counts_per_conversation_and_own_messages_are_read() -> None:
    model = logged_in(rooms=("lobby", "games"))
    model.on_message(msg(1, room="games"))
    model.on_message(msg(2, room="games"))
    model.on_message(msg(3, "alice", room="games"))
    model.on_message(msg(4))  # the active conversation: read at once
    rooms, _ = model.sidebar()
    assert [(e.name, e.unread) for e in rooms] == [("lobby", 0), ("games", 2)]
    model.switch(Conversation.room("games"), "")
    assert model.state.total_unread() == 0
    assert model.title() == "#games — chinwag"


def test_sidebar_lists_lobby_first_then_rooms_and_dms_by_recency() -> None:
    model = logged_in(rooms=("zoo", "lobby", "art"))
    model.on_message(msg(5, "carol", to="alice"))
    model.on_message(msg(7, "Bob", to="alice"))
    model.open_dm("dave")
    rooms, dms = model.sidebar()
    assert [e.name for e in rooms] == ["lobby", "art", "zoo"]
    assert [e.name for e in dms] == ["Bob", "carol", "dave"]
    model.close_dm(Conversation.dm("dave"))
    assert [e.name for e in model.sidebar()[1]] == ["Bob", "carol"]


# --- the conversation view ------------------------------------------------------------------


def test_days_are_separated_and_messages_grouped_by_sender() -> None:
    model = logged_in()
    day1 = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
    model.on_message(msg(1, "bob", "a", at=day1))
    model.on_message(msg(2, "bob", "b", at=day1 + timedelta(minutes=2)))
    model.on_message(msg(3, "bob", "c", at=day1 + timedelta(minutes=20)))
    model.on_message(msg(4, "carol", "d", at=day1 + timedelta(minutes=21)))
    model.on_message(msg(5, "carol", "e", at=day1 + timedelta(hours=3)))  # the next day
    shape = [
        ("day", i.day)
        if isinstance(i, DaySeparator)
        else (i.message.body, i.header)
        if isinstance(i, MessageLine)
        else type(i).__name__
        for i in model.items(LOBBY)
    ]
    assert shape == [
        ("day", date(2026, 11, 23)),
        ("a", True),
        ("b", False),
        ("c", True),
        ("d", True),
        ("day", date(2026, 11, 24)),
        ("e", True),
    ]


def test_the_away_divider_sits_above_the_first_message_of_the_login_backlog() -> None:
    model = GuiModel("alice", tz=UTC)
    model.on_welcome(Welcome("alice", True, ("lobby",)))
    model.on_message(msg(10, "alice", "mine, from my phone", replay=True))
    model.on_message(msg(11, "bob", "while you were out", replay=True))
    model.on_caught_up(CaughtUp(2, rooms={"lobby": 2}))
    model.on_message(msg(12, "bob", "live"))
    model.add_history(LOBBY, HistoryPage((msg(3, "bob", "older"),), more=True))
    items = model.items(LOBBY)
    assert isinstance(items[0], LoadEarlier)
    bodies = [i.message.body if isinstance(i, MessageLine) else type(i).__name__ for i in items]
    assert bodies[2:] == [
        "older",
        "mine, from my phone",
        "AwayDivider",
        "while you were out",
        "live",
    ]
    assert model.summary == "While you were away: 2 new messages — 2 in #lobby."
    # A reconnect's backlog is not "away".
    model.on_welcome(Welcome("alice", True, ("lobby",), resumed=True))
    model.on_message(msg(13, "bob", "after a reconnect", replay=True))
    model.on_caught_up(CaughtUp(1, rooms={"lobby": 1}, resumed=True))
    assert sum(isinstance(i, AwayDivider) for i in model.items(LOBBY)) == 1


def test_a_login_with_no_backlog_gets_no_summary() -> None:
    for account in (False, True):  # not even "nothing new" for an account
        model = logged_in(account=account)
        assert model.summary is None


def test_notices_follow_the_newest_message_and_presence_updates_members() -> None:
    model = logged_in()
    model.set_members("lobby", [User("alice", True), User("bob", True)])
    model.on_message(msg(1))
    model.on_presence(Presence("lobby", "carol", "join"))
    model.on_presence(Presence("lobby", "bob", "leave"))
    assert [u.nick for u in model.members("lobby") or []] == ["alice", "carol"]
    tail = model.items(LOBBY)[-2:]
    assert tail == [NoticeLine("carol joined"), NoticeLine("bob left")]


def test_a_guest_s_new_nick_renames_it_in_member_lists_and_is_told() -> None:
    """ircmsg: a nick change follows in the member lists of the rooms it is in."""
    model = logged_in()
    model.set_members("lobby", [User("alice", True), User("bob", False)])
    model.on_renamed(Renamed("bob", "rob"))
    assert [(u.nick, u.account) for u in model.members("lobby") or []] == [
        ("alice", True),
        ("rob", False),
    ]
    assert model.items(LOBBY)[-1] == NoticeLine("bob is now known as rob")


# --- pending messages -------------------------------------------------------------------------


def test_a_pending_message_is_queued_then_sending_then_replaced_by_the_stored_one() -> None:
    model = logged_in()
    model.on_status(Status("reconnecting", retry_in=3.0, queued=0), now=100.0)
    item = model.queue(LOBBY, "hello")
    assert model.items(LOBBY)[-1] == PendingLine(item.key, "hello", "queued")
    assert model.status_text(100.2) == "Connection lost — reconnecting in 3 s — 1 message queued"
    model.bind_cid(item.key, "c-1")
    model.on_status(Status("connected", queued=1), now=104.0)
    assert model.items(LOBBY)[-1] == PendingLine(item.key, "hello", "sending")
    model.on_sent(Sent("c-1", 7, T0))
    assert model.queued == 0
    model.on_message(msg(7, "alice", "hello", cid="c-1"))
    assert model.pending() == []
    lines = [i for i in model.items(LOBBY) if isinstance(i, MessageLine)]
    assert [line.message.body for line in lines] == ["hello"]


def test_our_copy_arriving_before_the_cid_is_known_is_not_shown_twice() -> None:
    model = logged_in()
    item = model.queue(LOBBY, "fast")
    model.on_message(msg(7, "alice", "fast", cid="c-9"))
    model.bind_cid(item.key, "c-9")
    assert model.pending() == []


def test_a_refused_message_stays_visible_and_goes_back_to_the_input_box() -> None:
    model = logged_in(rooms=("lobby", "games"))
    games = Conversation.room("games")
    model.switch(games, "")
    item = model.queue(games, "hello games")
    model.bind_cid(item.key, "c-1")
    failed = SendFailed("c-1", NotMember("you are not in that room"), "say", "games", "hello games")
    assert model.on_send_failed(failed) == games
    assert model.draft(games) == "hello games"
    assert model.items(games)[-1] == PendingLine(
        item.key, "hello games", "failed", "not sent: you are not in that room"
    )
    model.dismiss(item.key)
    assert model.pending() == []


def test_a_refusal_does_not_overwrite_what_the_user_typed_since() -> None:
    model = logged_in()
    item = model.queue(LOBBY, "first")
    model.bind_cid(item.key, "c-1")
    model.save_draft("something new")
    model.on_send_failed(SendFailed("c-1", NotMember(), "say", "lobby", "first"))
    assert model.draft(LOBBY) == "something new"


def test_going_offline_for_good_fails_what_was_not_sent() -> None:
    model = logged_in()
    item = model.queue(LOBBY, "lost?")
    model.on_status(Status("offline", queued=1, error="bad_password: wrong"), now=0.0)
    assert model.items(LOBBY)[-1] == PendingLine(
        item.key, "lost?", "failed", "not sent: the connection was closed"
    )
    assert model.status_text(0.0) == "Offline (bad_password: wrong)"


# --- input, typing, alerts, status ---------------------------------------------------------------


def test_the_input_is_kept_per_conversation_and_up_recalls_the_last_message() -> None:
    model = logged_in(rooms=("lobby", "games"))
    games = Conversation.room("games")
    assert model.switch(games, "half a thought") == ""
    assert model.switch(LOBBY, "games draft") == "half a thought"
    assert model.switch(games, "") == "games draft"
    model.queue(games, "sent one")
    assert model.recall(games) == "sent one"
    assert model.draft(games) == ""
    assert model.recall(LOBBY) is None


def test_typing_names_people_and_expires() -> None:
    model = logged_in()
    model.on_typing(Typing("bob", room="lobby"), now=0.0)
    assert model.typing_text(LOBBY, 1.0) == "bob is typing…"
    model.on_typing(Typing("carol", room="lobby"), now=1.0)
    assert model.typing_text(LOBBY, 2.0) == "bob and carol are typing…"
    model.on_typing(Typing("dave", room="lobby"), now=2.0)
    model.on_typing(Typing("alice", room="lobby"), now=2.0)  # ourselves, from another device
    assert model.typing_text(LOBBY, 3.0) == "Several people are typing…"
    model.on_message(msg(1, "dave"))
    assert model.typing_text(LOBBY, 6.5) == "carol is typing…"
    assert model.typing_text(LOBBY, 7.5) == ""
    model.on_typing(Typing("bob", to="alice"), now=10.0)
    assert model.typing_text(DM_BOB, 10.0) == "bob is typing…"


def test_dms_and_mentions_alert_only_when_the_window_is_not_focused() -> None:
    model = logged_in()
    arrival = model.on_message(msg(1, to="alice"))
    assert arrival is not None and not arrival.alert
    model.set_focused(False)
    arrival = model.on_message(msg(2, to="alice"))
    assert arrival is not None and arrival.alert
    assert model.title(flash=True) == "✉ bob sent you a message — chinwag"
    for mid, body, alert in [
        (3, "hey @Alice look", True),
        (4, "alice: ping", True),
        (5, "malice aforethought", False),
        (6, "nothing for you", False),
    ]:
        arrival = model.on_message(msg(mid, body=body))
        assert arrival is not None and arrival.alert is alert, body
    arrival = model.on_message(msg(7, to="alice", replay=True))
    assert arrival is not None and not arrival.alert
    model.set_focused(True)
    assert model.alert is None
    assert not model.title(flash=True).startswith("✉")


def test_the_status_bar_tells_the_truth() -> None:
    model = logged_in(account=False)
    assert model.status_text(0.0) == "Connected to chat.example:5050 as alice (guest)"
    model.on_status(Status("reconnecting", retry_in=2.5), now=10.0)
    assert model.status_text(10.0) == "Connection lost — reconnecting in 3 s"
    assert model.status_text(11.9) == "Connection lost — reconnecting in 1 s"
    assert model.status_text(12.6) == "Connection lost — reconnecting now…"
    model.queue(LOBBY, "a")
    model.queue(LOBBY, "b")
    model.on_status(Status("offline", queued=2), now=20.0)
    assert model.status_text(20.0) == "Offline — 2 messages queued"


# --- login refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "register", "field", "text"),
    [
        (BadPassword(), False, "password", "Wrong password for “alice”."),
        (PasswordRequired(), False, "password", "“alice” is registered: enter its password."),
        (PasswordRequired(), True, "nick", "“alice” is already registered."),
        (NickTaken(), False, "nick", "Someone online is using “alice” right now."),
        (BadNick("too long"), False, "nick", "“alice” can't be used (too long)."),
        (WeakPassword(), True, "password", "Too short: a password needs at least 8 characters."),
        (RateLimited(41.2), False, "password", "Too many attempts. Try again in 42 s."),
        (UnsupportedProto(), False, "server", "That server speaks a protocol"),
        (ServerError(), False, "form", "The server had a problem. Try again."),
        (ConnectionRefusedError(111, "refused"), False, "server", "Nobody is answering at h:1."),
        (TimeoutError(), False, "server", "h:1 did not answer in time."),
    ],
)
def test_login_refusals_are_put_in_plain_words_next_to_their_field(
    error: BaseException, register: bool, field: str, text: str
) -> None:
    problem = explain_login_error(error, server="h:1", nick="alice", register=register)
    assert problem.field == field
    assert problem.text.startswith(text)
    assert (problem.retry_after is not None) == isinstance(error, RateLimited)


# --- remembered settings, LAN list ------------------------------------------------------


def test_prefs_remember_recent_servers_and_nothing_secret(tmp_path: Path) -> None:
    prefs = Prefs.load(tmp_path)
    assert (prefs.recent, prefs.nick, prefs.theme) == ([], "", "light")
    for i in range(MAX_RECENT + 2):
        prefs.remember_server(f"host{i}:5050", "alice")
    prefs.remember_server("host3:5050", "bob")
    prefs.theme = "dark"
    prefs.save()
    again = Prefs.load(tmp_path)
    assert again.recent[:2] == ["host3:5050", f"host{MAX_RECENT + 1}:5050"]
    assert len(again.recent) == MAX_RECENT
    assert (again.nick, again.theme) == ("bob", "dark")
    assert set(json.loads((tmp_path / PREFS_FILE).read_text())) == {
        "recent",
        "nick",
        "theme",
        "receipts",
    }


def test_damaged_prefs_give_the_defaults(tmp_path: Path) -> None:
    (tmp_path / PREFS_FILE).write_text("{not json")
    assert Prefs.load(tmp_path).recent == []
    (tmp_path / PREFS_FILE).write_text('{"recent": [1, "ok:1"], "theme": "purple"}')
    prefs = Prefs.load(tmp_path)
    assert (prefs.recent, prefs.theme) == (["ok:1"], "light")


async def test_the_lan_list_is_posted_when_it_changes_and_survives_a_failing_source() -> None:
    answers: list[object] = [
        [LanServer("b", "10.0.0.2", 5050)],
        [LanServer("b", "10.0.0.2", 5050)],
        OSError("no multicast"),
        [LanServer("b", "10.0.0.2", 5050), LanServer("a", "fe80::1", 5051, tls=True)],
    ]
    posted: list[object] = []

    async def source() -> list[LanServer]:
        answer = answers.pop(0) if answers else []
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, list)
        return answer

    task = asyncio.create_task(poll_lan(source, posted.append, interval=0.01))
    async with asyncio.timeout(5):
        while len(posted) < 3:
            await asyncio.sleep(0.01)
    task.cancel()
    assert [[s.address for s in p.servers] for p in posted if isinstance(p, LanServers)] == [
        ["10.0.0.2:5050"],
        ["[fe80::1]:5051", "10.0.0.2:5050"],
        [],
    ]


def test_colour_emoji_fall_back_to_their_names() -> None:
    from chinwag.client.gui.model import emoji_as_text

    assert (
        emoji_as_text("hi 😀, well done 👍🏽!") == "hi :grinning face:, well done :thumbs up sign:!"
    )
    assert emoji_as_text("❤️ and ☺ stay") == "❤ and ☺ stay"  # a font has these
    assert emoji_as_text("家族 👨‍👩‍👧") == "家族 :man::woman::girl:"


# --- message features (protocol version 1.1) ------------------------------------------


def lines(model: GuiModel, conversation: Conversation = LOBBY) -> dict[int, MessageLine]:
    return {i.message.id: i for i in model.items(conversation) if isinstance(i, MessageLine)}


def change(kind: str, target: int, by: str = "bob", **fields: object) -> Changed:
    return Changed(kind, 1000 + target, target, by, room="lobby", **fields)  # type: ignore[arg-type]


def test_edits_deletions_and_reactions_change_the_line_shown() -> None:
    model = logged_in()
    model.on_message(msg(1, "alice", "hello"))
    model.on_message(msg(2, "bob", "hi"))
    model.on_change(change("edited", 1, "alice", body="hello there"))
    model.on_change(change("reacted", 2, "bob", emoji="👍"))
    model.on_change(change("reacted", 2, "alice", emoji="👍"))
    model.on_change(change("reacted", 2, "alice", emoji="👍"))  # twice: still one of ours
    model.on_change(change("reacted", 2, "carol", emoji="🎉"))
    shown = lines(model)
    assert (shown[1].message.body, shown[1].message.edited) == ("hello there", True)
    assert shown[2].chips == (Chip("👍", 2, True), Chip("🎉", 1, False))
    model.on_change(change("reacted", 2, "alice", emoji="👍", on=False))
    assert lines(model)[2].chips == (Chip("👍", 1, False), Chip("🎉", 1, False))
    assert model.on_change(change("edited", 99, body="not kept here")) is None
    model.on_change(change("deleted", 2))
    assert lines(model)[2].message.deleted and lines(model)[2].chips == ()


def test_only_our_own_live_messages_can_be_edited_and_deletion_ends_the_edit() -> None:
    model = logged_in()
    model.on_message(msg(1, "alice", "mine"))
    model.on_message(msg(2, "bob", "theirs"))
    assert not model.start_edit(2) and model.editing is None
    assert not model.start_edit(3)
    assert model.start_edit(1) and lines(model)[1].editing
    model.on_change(change("deleted", 1, "alice"))
    assert model.editing is None and not model.can_edit(1)


def test_a_reply_quotes_its_original_and_is_sent_with_its_id() -> None:
    model = logged_in()
    model.on_message(msg(1, "bob", "```\n" + "x" * 100 + "\n```"))
    model.on_message(msg(2, "bob", "second"))
    assert model.start_reply(1)
    quote = model.replying(LOBBY)
    assert quote == Quote(1, "bob", "x" * 79 + "…", True)
    pending = model.queue(LOBBY, "an answer")
    assert pending.reply_to == 1 and model.replying(LOBBY) is None
    assert [i.quote for i in model.items(LOBBY) if isinstance(i, PendingLine)] == [quote]
    assert not model.start_reply(99)  # not here
    reply = Message(3, T0, "bob", "re", room="lobby", reply_to=2)
    far = Message(4, T0, "bob", "re", room="lobby", reply_to=1_000_000)
    model.on_message(reply)
    model.on_message(far)
    assert lines(model)[3].quote == Quote(2, "bob", "second", True)
    assert lines(model)[4].quote == Quote(1_000_000, "", "an earlier message", False)
    model.on_change(change("deleted", 2))
    assert lines(model)[3].quote == Quote(2, "bob", "message deleted", True)


def test_an_edit_alerts_only_when_it_newly_mentions_us_unfocused() -> None:
    model = logged_in()
    model.on_message(msg(1, "bob", "lunch?"))
    model.set_focused(False)
    arrival = model.on_change(change("edited", 1, body="lunch? @alice", mentions=("alice",)))
    assert arrival is not None and arrival.alert
    assert model.alert == "bob mentioned you in #lobby"
    assert lines(model)[1].mention
    model.set_focused(True)
    model.set_focused(False)
    again = model.on_change(change("edited", 1, body="lunch? @alice!"))  # nobody new
    assert again is not None and not again.alert
    replayed = model.on_change(
        change("edited", 1, body="lunch @alice", mentions=("alice",), replay=True)
    )
    assert replayed is not None and not replayed.alert


def test_unread_counts_follow_the_server_and_other_devices() -> None:
    model = GuiModel("alice", "chat.example:5050", tz=UTC)
    model.on_welcome(Welcome("alice", True, ("lobby", "games")))
    for i in range(1, 4):
        model.on_message(msg(i, "bob", f"g{i}", room="games", replay=True))
    model.on_message(msg(4, "bob", "psst", to="alice", replay=True))
    # The server says two were read on another device: its count wins over ours.
    model.on_caught_up(CaughtUp(4, rooms={"games": 3}, dms={"bob": 1}, unread={"games": 1}))
    model.on_status(Status("connected"), now=0.0)
    assert model.state.unread(Conversation.room("games")) == 1
    assert model.state.unread(DM_BOB) == 0
    model.on_message(msg(5, "bob", "more", room="games"))
    assert model.state.unread(Conversation.room("games")) == 2
    model.on_read_marker(ReadMarker(5, room="games"))
    assert model.state.unread(Conversation.room("games")) == 0


def test_the_conversation_on_screen_is_marked_read_only_when_focused_and_past_the_marker() -> None:
    model = logged_in()
    assert model.read_due() is None  # nothing here yet
    model.on_message(msg(1))
    assert model.read_due() == (LOBBY, 1)
    model.read_sent(LOBBY, 1)
    assert model.read_due() is None  # asked already
    model.on_message(msg(2))
    model.set_focused(False)
    assert model.read_due() is None  # not looked at
    model.set_focused(True)
    assert model.read_due() == (LOBBY, 2)
    model.read_sent(LOBBY, 2)
    model.read_done(LOBBY, 2, ok=False)  # refused: not asked again for the same message
    assert model.read_due() is None
    model.read_done(LOBBY, 1, ok=True)
    assert model.state.marker(LOBBY) == 1
    model.on_message(msg(3))
    assert model.read_due() == (LOBBY, 3)  # a newer one: asked
    model.on_status(Status("reconnecting", retry_in=1.0), now=0.0)
    assert model.read_due() is None


def test_read_ticks_show_how_far_our_dms_got_when_receipts_are_on() -> None:
    model = logged_in()
    for mid in (1, 2, 3):
        model.on_message(msg(mid, "alice", f"m{mid}", to="bob"))
    model.on_message(msg(4, "bob", "reply", to="alice"))
    assert {i: line.tick for i, line in lines(model, DM_BOB).items()} == dict.fromkeys((1, 2, 3, 4))
    model.receipts = True
    model.on_receipt(Receipt("bob", 2, "delivered"))
    model.on_receipt(Receipt("bob", 1, "read"))
    ticks = {i: line.tick for i, line in lines(model, DM_BOB).items()}
    assert ticks == {1: "read", 2: "delivered", 3: "sent", 4: None}
    model.on_receipt(Receipt("Bob", 3, "read"))  # read implies delivered
    assert {line.tick for line in lines(model, DM_BOB).values()} == {"read", None}


def test_search_results_list_where_who_when_and_the_first_line() -> None:
    model = logged_in()
    page = HistoryPage(
        (msg(9, "bob", "\nthe okapi\nsecond line"), msg(5, "alice", "okapi", to="bob")), True
    )
    model.set_results("okapi", page)
    assert model.results_title() == "2+ found for “okapi”"
    assert model.result_rows() == [
        "#lobby · bob · 24 Nov 09:00 — the okapi",
        "@bob · alice · 24 Nov 09:00 — okapi",
    ]
    model.set_results("okapi", HistoryPage((msg(2, "bob", "okapi!"),), False), more_of=True)
    assert [m.id for m in model.results] == [
        9,
        5,
        2,
    ] and model.results_title() == "3 found for “okapi”"
    model.set_results("zebra", HistoryPage((), False))
    assert model.results_title() == "Nothing found for “zebra”"


def test_a_reaction_can_be_typed_as_an_emoji_or_by_its_name() -> None:
    assert emoji_from_text(" 🦘 ") == "🦘"
    assert emoji_from_text("kangaroo") == "🦘"
    assert emoji_from_text(":thumbs up sign:") == "👍"  # as the app shows it
    assert emoji_from_text("heavy_black_heart") == "❤"
    assert emoji_from_text("LATIN SMALL LETTER A") is None  # a name, but not an emoji
    assert emoji_from_text("no such thing") is None
    assert emoji_from_text("   ") is None
