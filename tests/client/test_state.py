"""The pure client model: duplicates dropped by id, conversations, unread counts; the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chinwag.client.config import config_dir, device_id, is_valid_device
from chinwag.client.connection import error_from_frame
from chinwag.client.events import CaughtUp, Message, parse_ts
from chinwag.client.outbox import Outbox
from chinwag.client.state import ChatState, Conversation
from chinwag.client.tui import clean, format_message, parse_server, summary
from chinwag.errors import ChatError, NotMember, RateLimited

T0 = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)


def msg(
    mid: int,
    sender: str = "bob",
    *,
    room: str | None = "lobby",
    to: str | None = None,
    me: str = "alice",
    body: str = "hi",
) -> Message:
    frame: dict[str, object] = {
        "type": "message",
        "id": mid,
        "ts": "2026-11-24T05:00:00.123Z",
        "from": sender,
        "body": body,
    }
    if to is not None:
        frame["to"] = to
    else:
        frame["room"] = room
    made = Message.from_frame(frame, me)
    assert made is not None
    return made


def test_duplicate_ids_are_dropped() -> None:
    state = ChatState("alice")
    assert state.add(msg(1))
    assert state.add(msg(2))
    assert not state.add(msg(1))
    assert not state.add(msg(2))
    assert [m.id for m in state.messages(Conversation.room("lobby"))] == [1, 2]


def test_ids_older_than_the_remembered_window_count_as_duplicates() -> None:
    state = ChatState("alice", max_ids=3)
    for i in range(1, 6):
        assert state.add(msg(i))
    assert state.is_duplicate(1) and state.is_duplicate(2) and state.is_duplicate(5)
    assert not state.add(msg(2))
    assert state.add(msg(6))


def test_messages_are_kept_per_conversation_in_id_order() -> None:
    state = ChatState("alice")
    state.add(msg(3, room="games"))
    state.add(msg(1))
    state.add(msg(2, to="alice"))  # DM from bob
    state.add(msg(4, "alice", to="Bob"))  # our DM to bob: same conversation
    assert [m.id for m in state.messages(Conversation.room("games"))] == [3]
    assert [m.id for m in state.messages(Conversation.dm("BOB"))] == [2, 4]
    assert state.display_name(Conversation.dm("bob")) == "@Bob"
    assert state.conversations()[0] == Conversation.dm("bob")  # most recent first


def test_dm_to_yourself_is_one_conversation() -> None:
    state = ChatState("alice")
    state.add(msg(1, "alice", to="alice"))
    assert [m.id for m in state.messages(Conversation.dm("alice"))] == [1]


def test_unread_counts_ignore_own_messages_and_the_active_conversation() -> None:
    state = ChatState("alice")
    state.set_active(Conversation.room("lobby"))
    state.add(msg(1))  # active: read
    state.add(msg(2, room="games"))
    state.add(msg(3, room="games"))
    state.add(msg(4, "alice", room="games"))  # own
    state.add(msg(5, to="alice"))
    assert state.unread(Conversation.room("lobby")) == 0
    assert state.unread(Conversation.room("games")) == 2
    assert state.unread(Conversation.dm("bob")) == 1
    assert state.total_unread() == 3
    state.set_active(Conversation.room("games"))
    assert state.unread(Conversation.room("games")) == 0
    state.mark_read(Conversation.dm("bob"))
    assert state.total_unread() == 0


def test_a_duplicate_is_not_counted_as_unread() -> None:
    state = ChatState("alice")
    state.add(msg(1, room="games"))
    state.add(msg(1, room="games"))
    assert state.unread(Conversation.room("games")) == 1


def test_history_merges_older_messages_without_unread_or_doubles() -> None:
    state = ChatState("alice")
    state.set_active(Conversation.dm("carol"))
    state.add(msg(10))
    added = state.add_history([msg(5), msg(7), msg(10)])
    assert [m.id for m in added] == [5, 7]
    assert [m.id for m in state.messages(Conversation.room("lobby"))] == [5, 7, 10]
    assert state.oldest_id(Conversation.room("lobby")) == 5
    assert state.total_unread() == 1  # only the live one
    assert state.add(msg(11))  # history does not make live ids look like duplicates


def test_kept_messages_are_capped_per_conversation() -> None:
    state = ChatState("alice", max_per_conversation=3)
    for i in range(1, 8):
        state.add(msg(i))
    assert [m.id for m in state.messages(Conversation.room("lobby"))] == [5, 6, 7]


def test_rooms_follow_welcome_join_and_leave() -> None:
    state = ChatState()
    state.welcome("Alice", True, ["lobby", "games"])
    assert state.nick == "Alice" and state.account
    assert state.is_me("ALICE") and not state.is_me("bob")
    state.joined("Chess")
    state.left("games")
    assert state.rooms == {"lobby", "chess"}


def test_message_from_frame_marks_own_replay_and_peer() -> None:
    frame = {
        "type": "message",
        "id": 9,
        "ts": "2026-11-24T05:00:00.123Z",
        "from": "ALICE",
        "to": "bob",
        "body": "x",
        "replay": True,
        "cid": "c-1",
    }
    m = Message.from_frame(frame, "alice")
    assert m is not None
    assert m.own and m.replay and m.is_dm and m.peer == "bob" and m.cid == "c-1"
    assert m.ts == T0 + timedelta(milliseconds=123)


@pytest.mark.parametrize(
    "frame",
    [
        {"id": "1", "from": "a", "body": "x", "room": "lobby"},
        {"id": 0, "from": "a", "body": "x", "room": "lobby"},
        {"id": True, "from": "a", "body": "x", "room": "lobby"},
        {"id": 1, "from": "a", "body": "x"},
        {"id": 1, "from": None, "body": "x", "room": "lobby"},
    ],
)
def test_malformed_message_frames_are_skipped(frame: dict[str, object]) -> None:
    assert Message.from_frame(frame, "me") is None


def test_bad_timestamps_do_not_lose_the_message() -> None:
    assert parse_ts("garbage").tzinfo is not None
    assert parse_ts("2026-11-24T05:00:00Z") == T0


# --- outbox ----------------------------------------------------------------------------


def test_outbox_keeps_items_until_acked_and_resends_in_order() -> None:
    box = Outbox(prefix="c")
    a = box.add("say", "lobby", "one")
    b = box.add("dm", "bob", "two")
    assert a.cid != b.cid
    assert a.frame() == {"type": "say", "room": "lobby", "body": "one", "cid": a.cid, "ref": a.cid}
    assert b.frame()["to"] == "bob"
    assert box.next_to_send() is a
    box.mark_sent(a.cid)
    box.mark_sent(b.cid)
    assert box.next_to_send() is None and box.in_flight == 2
    box.retry_all()  # connection lost
    assert box.next_to_send() is a and len(box) == 2
    box.mark_sent(a.cid)
    assert box.remove(a.cid) is a  # acked
    assert box.next_to_send() is b
    assert box.get(b.cid) is b and b.cid in box and a.cid not in box


def test_outbox_retry_puts_one_item_back_ahead_of_later_ones() -> None:
    box = Outbox()
    items = [box.add("say", "lobby", str(i)) for i in range(3)]
    for item in items:
        box.mark_sent(item.cid)
    box.retry(items[1].cid)  # rate limited
    assert box.next_to_send() is items[1]
    assert items[1].attempts == 1


def test_cids_differ_between_outboxes() -> None:
    assert Outbox().add("say", "x", "y").cid != Outbox().add("say", "x", "y").cid


# --- errors ----------------------------------------------------------------------------


def test_error_frames_map_to_their_chat_error_class() -> None:
    err = error_from_frame({"type": "error", "code": "not_member", "message": "no", "ref": "r1"})
    assert isinstance(err, NotMember) and err.message == "no"
    limited = error_from_frame({"type": "error", "code": "rate_limited", "retry_after": 0.25})
    assert isinstance(limited, RateLimited) and limited.retry_after == 0.25
    odd = error_from_frame({"type": "error", "code": "brand_new_code", "message": "?"})
    assert isinstance(odd, ChatError) and odd.code == "brand_new_code"
    assert type(odd) is type(error_from_frame({"type": "error", "code": "brand_new_code"}))


# --- config ----------------------------------------------------------------------------


def test_device_id_is_stable_for_a_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    base = tmp_path
    first = device_id(base / "a")
    assert is_valid_device(first)
    assert device_id(base / "a") == first
    assert device_id(base / "b") != first
    monkeypatch.setenv("CHINWAG_CONFIG_DIR", str(base / "a"))
    assert config_dir() == base / "a" and device_id() == first
    (base / "a" / "device").write_text("not valid!\n")
    assert is_valid_device(device_id(base / "a"))


# --- terminal rendering ------------------------------------------------------------------


def test_clean_escapes_control_and_invisible_characters() -> None:
    assert clean("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert clean("a\x9b31mb\x07\x7f") == "a\\x9b31mb\\x07\\x7f"
    assert clean("abc\u202edef\u2066") == "abc\\u202edef\\u2066"
    assert clean("x\ny") == "x\\x0ay"
    assert clean("x\ny", multiline=True) == "x\ny"
    assert clean("a\tb") == "a    b"
    assert clean("héllo 👩\u200d💻 日本") == "héllo 👩\u200d💻 日本"
    assert clean("\U000e0041") == "\\U000e0041"


def test_format_message_uses_local_time_and_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    try:
        line = format_message(msg(1, body="hi\nthere"))
        assert line.startswith("10:30 #lobby <bob> hi\n")
        assert line.endswith(" there")
        assert format_message(msg(2, "alice", to="bob")).startswith("10:30 @bob <alice> hi")
        assert format_message(msg(3, to="alice")).startswith("10:30 @bob <bob> hi")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_summary_line() -> None:
    event = CaughtUp(4, rooms={"lobby": 1}, dms={"alice": 3})
    assert summary(event) == "while you were away: 3 from alice, 1 in lobby"
    assert summary(CaughtUp(0)) == "while you were away: nothing new"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost", ("localhost", 5050)),
        ("example.org:6000", ("example.org", 6000)),
        ("[::1]:7000", ("::1", 7000)),
        ("[::1]", ("::1", 5050)),
        ("::1", ("::1", 5050)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["host:0", "host:99999", "host:x", "[::1"])
def test_parse_server_refuses_bad_ports(text: str) -> None:
    with pytest.raises(ValueError):
        parse_server(text)
