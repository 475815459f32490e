"""The IRC codec: registration, commands, limits and rendering, bytes in and lines out."""

from __future__ import annotations

import base64
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from chinwag.protocol.events import (
    Ack,
    BanRow,
    BansReply,
    CaughtUp,
    Command,
    Delete,
    Deleted,
    Dm,
    Edited,
    Error,
    Fatal,
    Grant,
    Hello,
    History,
    HistoryRange,
    HistoryReply,
    HistoryTargets,
    Incoming,
    Invite,
    Join,
    Leave,
    ListBans,
    ListRooms,
    Message,
    Moderate,
    Monitor,
    MonitorNotice,
    MonitorReply,
    Ok,
    Outgoing,
    Ping,
    Pong,
    Presence,
    React,
    Reacted,
    ReadMarker,
    Receipt,
    Register,
    Rename,
    Results,
    RoomInfo,
    RoomRow,
    RoomSet,
    RoomsReply,
    Say,
    Seen,
    SetBot,
    SetName,
    Typing,
    TypingNotice,
    Welcome,
    Who,
    Whois,
    WhoisReply,
    WhoMember,
    WhoReply,
)
from chinwag.protocol.irc import (
    MAX_LINE,
    MAX_TAGS,
    IrcServerCodec,
    Reply,
    chinwag_nick,
    escape_tag_value,
    format_message,
    irc_nick,
    parse_message,
    unescape_tag_value,
)

WELCOME = Welcome(
    proto=1,
    nick="alice",
    account=True,
    server_name="chinwag",
    server_version="1.0",
    motd="be nice",
    rooms=("lobby",),
)


def replies(items: list[Incoming | Reply]) -> bytes:
    return b"".join(item.wire for item in items if isinstance(item, Reply))


def commands(items: list[Incoming | Reply]) -> list[Command]:
    """The commands for the hub among ``items`` (the codec makes no other kind here)."""
    out = [item for item in items if not isinstance(item, Reply)]
    assert all(isinstance(item, Command) for item in out), out
    return [item for item in out if isinstance(item, Command)]


def registered(caps: str = "") -> IrcServerCodec:
    """A codec that went through registration (with ``caps`` enabled) and was welcomed."""
    codec = IrcServerCodec()
    if caps:
        codec.receive_data(b"CAP LS 302\r\n")
        codec.receive_data(f"CAP REQ :{caps}\r\n".encode())
    items = codec.receive_data(b"NICK alice\r\nUSER alice 0 * :Alice\r\n")
    if caps:
        items += codec.receive_data(b"CAP END\r\n")
    (hello,) = commands(items)
    assert isinstance(hello, Hello)
    codec.render(replace(WELCOME, ref=hello.ref))
    assert codec.registered
    return codec


# --- lines -----------------------------------------------------------------------------


def test_parses_tags_source_command_and_trailing() -> None:
    msg = parse_message(r"@label=a\sb;+draft/x :nick!u@h privmsg #lobby :hello there")
    assert msg is not None
    assert msg.command == "PRIVMSG"
    assert msg.params == ("#lobby", "hello there")
    assert msg.tags == {"label": "a b", "+draft/x": ""}
    assert msg.source == "nick!u@h"


def test_a_line_without_a_command_is_nothing() -> None:
    assert parse_message("") is None
    assert parse_message("@a=b ") is None


def test_tag_values_escape_and_unescape_round_trip() -> None:
    value = "a;b c\\d\re\nf"
    assert unescape_tag_value(escape_tag_value(value)) == value
    assert unescape_tag_value("x\\") == "x"  # a lone trailing backslash is dropped


def test_format_adds_a_colon_only_where_needed() -> None:
    assert format_message("JOIN", "#a", source="n!n@h") == b":n!n@h JOIN #a\r\n"
    assert format_message("PRIVMSG", "#a", "hi there") == b"PRIVMSG #a :hi there\r\n"
    assert format_message("PRIVMSG", "#a", ":)") == b"PRIVMSG #a ::)\r\n"
    assert format_message("PING", "", tags={"time": "x"}) == b"@time=x PING :\r\n"


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\0 ")))
def test_format_then_parse_gives_the_trailing_parameter_back(body: str) -> None:
    line = format_message("PRIVMSG", "#a", body).decode()[:-2]
    msg = parse_message(line)
    assert msg is not None
    assert msg.params == ("#a", body)


_WORDS = [
    b"CAP LS 302",
    b"CAP REQ :sasl batch labeled-response echo-message",
    b"CAP END",
    b"AUTHENTICATE PLAIN",
    b"AUTHENTICATE +",
    b"NICK a",
    b"USER a 0 * :A",
    b"PASS x",
    b"PRIVMSG",
    b"PRIVMSG #",
    b"JOIN",
    b"PART ,",
    b"CHATHISTORY BEFORE",
    b"NAMES",
    b"@label=",
    b" :",
    b"\r\n",
    b"\xff",
]


@given(
    st.lists(st.one_of(st.sampled_from(_WORDS), st.binary(max_size=700)), max_size=12),
    st.booleans(),
)
def test_the_codec_never_raises_on_any_bytes(chunks: list[bytes], welcomed: bool) -> None:
    codec = registered("labeled-response echo-message batch") if welcomed else IrcServerCodec()
    for chunk in chunks:
        items = codec.receive_data(chunk)
        for item in items:
            if isinstance(item, Reply):
                assert item.wire.endswith(b"\r\n")
                assert all(
                    len(line) + 2 <= MAX_LINE + MAX_TAGS for line in item.wire.split(b"\r\n")
                )
            elif isinstance(item, Fatal):
                assert codec.closed and item is items[-1]


@given(st.text(max_size=300))
def test_parse_never_raises_on_any_text(text: str) -> None:
    msg = parse_message(text)
    assert msg is None or msg.command == msg.command.upper()


# --- limits ----------------------------------------------------------------------------


def test_a_line_at_the_limit_is_read_and_one_byte_more_gets_417_and_is_kept() -> None:
    codec = registered()
    prefix = b"PRIVMSG #lobby :"
    fits = prefix + b"x" * (MAX_LINE - 2 - len(prefix))
    (say,) = commands(codec.receive_data(fits + b"\r\n"))
    assert isinstance(say, Say)
    assert len(say.body) == MAX_LINE - 2 - len(prefix)
    items = codec.receive_data(fits + b"x\r\nPRIVMSG #lobby :after\r\n")
    assert b" 417 alice :Input line was too long" in replies(items)
    assert [c.body for c in commands(items) if isinstance(c, Say)] == ["after"]
    assert not codec.closed


def test_tags_up_to_their_own_limit_are_allowed_beyond_it_417() -> None:
    codec = registered()
    tag = b"@+x=" + b"a" * (MAX_TAGS - 5) + b" "
    assert len(tag) == MAX_TAGS
    (say,) = commands(codec.receive_data(tag + b"PRIVMSG #lobby :hi\r\n"))
    assert isinstance(say, Say)
    items = codec.receive_data(b"@+x=" + b"a" * (MAX_TAGS - 4) + b" PRIVMSG #lobby :hi\r\n")
    assert b" 417 " in replies(items)
    assert commands(items) == []


def test_a_line_far_beyond_the_limit_ends_the_connection_before_its_newline() -> None:
    codec = IrcServerCodec(hard_limit=6000)
    items = codec.receive_data(b"PING :a\r\n" + b"x" * 6001)
    assert b"PONG" in replies(items)
    assert isinstance(items[-1], Fatal)
    assert codec.closed
    assert codec.receive_data(b"PING :b\r\n") == []


def test_bad_utf8_gets_fail_invalid_utf8_and_the_connection_goes_on() -> None:
    codec = registered()
    items = codec.receive_data(b"PRIVMSG #lobby :\xff\xfe\r\nPRIVMSG #lobby :ok\r\n")
    assert b"FAIL PRIVMSG INVALID_UTF8 :" in replies(items)
    assert [c.body for c in commands(items) if isinstance(c, Say)] == ["ok"]


# --- registration ------------------------------------------------------------------------


def test_nick_and_user_make_a_guest_hello_with_the_device_of_the_username() -> None:
    codec = IrcServerCodec()
    assert codec.receive_data(b"NICK bob\r\n") == []
    (hello,) = commands(codec.receive_data(b"USER bob@phone 0 * :Bob\r\n"))
    assert isinstance(hello, Hello)
    assert (hello.nick, hello.password, hello.device, hello.client) == ("bob", None, "phone", "irc")


def test_pass_logs_in_and_the_device_defaults_to_irc() -> None:
    codec = IrcServerCodec()
    items = codec.receive_data(b"PASS s3cret\r\nNICK bob\r\nUSER bob 0 * :Bob\r\n")
    (hello,) = commands(items)
    assert isinstance(hello, Hello)
    assert (hello.password, hello.device) == ("s3cret", "irc")


def test_cap_negotiation_holds_the_hello_until_cap_end() -> None:
    codec = IrcServerCodec()
    ls = replies(codec.receive_data(b"CAP LS 302\r\n"))
    assert b"sasl=PLAIN" in ls and b"echo-message" in ls
    assert commands(codec.receive_data(b"NICK bob\r\nUSER bob 0 * :B\r\n")) == []
    ack = replies(codec.receive_data(b"CAP REQ :server-time echo-message\r\n"))
    assert ack == b":chinwag CAP * ACK :server-time echo-message\r\n"
    nak = replies(codec.receive_data(b"CAP REQ :no-such-cap\r\n"))
    assert b" NAK " in nak
    (hello,) = commands(codec.receive_data(b"CAP END\r\n"))
    assert isinstance(hello, Hello)
    assert {"server-time", "echo-message"} <= codec.caps


def test_welcome_sends_001_motd_and_joins_the_lobby() -> None:
    codec = IrcServerCodec()
    (hello,) = commands(codec.receive_data(b"NICK alice\r\nUSER a 0 * :A\r\n"))
    wire = codec.render(replace(WELCOME, ref=hello.ref))
    assert wire.startswith(b":chinwag 001 alice :Welcome")
    assert b":chinwag 372 alice :- be nice\r\n" in wire
    assert b":alice!alice@chinwag JOIN #lobby\r\n" in wire
    assert b"UTF8ONLY" in wire


def test_a_taken_or_registered_nick_gets_433_and_a_new_nick_tries_again() -> None:
    codec = IrcServerCodec()
    (hello,) = commands(codec.receive_data(b"NICK alice\r\nUSER a 0 * :A\r\n"))
    refusal = Error(code="password_required", message="alice is registered", ref=hello.ref)
    assert codec.render(refusal).startswith(b":chinwag 433 * alice :Nickname is already in use")
    (again,) = commands(codec.receive_data(b"NICK alice_\r\n"))
    assert isinstance(again, Hello) and again.nick == "alice_"


def test_a_nick_irc_cannot_carry_gets_432() -> None:
    codec = IrcServerCodec()
    items = codec.receive_data(b"NICK #bad\r\n")
    assert b" 432 * #bad :" in replies(items)
    assert commands(items) == []


def test_commands_before_registration_get_451() -> None:
    codec = IrcServerCodec()
    items = codec.receive_data(b"PRIVMSG #lobby :hi\r\n")
    assert b" 451 " in replies(items) and commands(items) == []


def test_sasl_plain_logs_in_before_cap_end_and_001_follows_cap_end() -> None:
    codec = IrcServerCodec()
    codec.receive_data(b"CAP LS 302\r\nNICK alice\r\nUSER alice@laptop 0 * :A\r\n")
    codec.receive_data(b"CAP REQ :sasl\r\n")
    assert replies(codec.receive_data(b"AUTHENTICATE PLAIN\r\n")) == b"AUTHENTICATE +\r\n"
    token = base64.b64encode(b"\0alice\0hunter22").decode()
    (hello,) = commands(codec.receive_data(f"AUTHENTICATE {token}\r\n".encode()))
    assert isinstance(hello, Hello)
    assert (hello.nick, hello.password, hello.device) == ("alice", "hunter22", "laptop")
    wire = codec.render(replace(WELCOME, ref=hello.ref))
    assert b" 900 alice alice!alice@chinwag alice :" in wire and b" 903 " in wire
    assert b" 001 " not in wire
    held = Message(id=7, ts_ms=0, sender="bob", to="alice", body="while away", replay=True)
    assert codec.render(held) == b""
    done = replies(codec.receive_data(b"CAP END\r\n"))
    assert b" 001 alice " in done
    assert done.index(b" 001 ") < done.index(b"while away")


def test_a_failed_sasl_login_gets_904() -> None:
    codec = IrcServerCodec()
    codec.receive_data(b"CAP LS 302\r\nCAP REQ :sasl\r\nAUTHENTICATE PLAIN\r\n")
    token = base64.b64encode(b"alice\0alice\0wrong").decode()
    (hello,) = commands(codec.receive_data(f"AUTHENTICATE {token}\r\n".encode()))
    wire = codec.render(Error(code="bad_password", message="wrong password", ref=hello.ref))
    assert wire.startswith(b":chinwag 904 * :SASL authentication failed")
    assert not codec.registered


def test_sasl_with_junk_is_refused_without_a_hello() -> None:
    codec = IrcServerCodec()
    codec.receive_data(b"CAP LS 302\r\nCAP REQ :sasl\r\nAUTHENTICATE PLAIN\r\n")
    items = codec.receive_data(b"AUTHENTICATE !!!\r\n")
    assert b" 904 " in replies(items) and commands(items) == []


# --- commands ----------------------------------------------------------------------------


def test_privmsg_to_a_channel_is_say_and_to_a_nick_is_dm() -> None:
    codec = registered()
    items = commands(codec.receive_data(b"PRIVMSG #lobby :hi all\r\nPRIVMSG bob :psst\r\n"))
    say, dm = items
    assert isinstance(say, Say) and (say.room, say.body) == ("lobby", "hi all")
    assert isinstance(dm, Dm) and (dm.to, dm.body) == ("bob", "psst")


def test_join_part_names_who_list_quit_pong() -> None:
    codec = registered()
    items = commands(
        codec.receive_data(
            b"JOIN #a,#b\r\nPART #a :bye\r\nNAMES #b\r\nWHO #b\r\nLIST\r\nPONG :x\r\nQUIT :gone\r\n"
        )
    )
    assert [type(i).__name__ for i in items] == [
        "Join",
        "Join",
        "Leave",
        "Who",
        "Who",
        "ListRooms",
        "Pong",
        "Bye",
    ]
    assert isinstance(items[0], Join) and items[0].room == "a"
    assert isinstance(items[2], Leave) and items[2].room == "a"
    assert isinstance(items[5], ListRooms)


def test_ping_is_answered_by_the_codec_and_one_without_a_token_gets_461() -> None:
    codec = registered()
    assert replies(codec.receive_data(b"PING :tok\r\n")) == b":chinwag PONG chinwag tok\r\n"
    assert replies(codec.receive_data(b"PING\r\n")).startswith(b":chinwag 461 alice PING :")


def test_nickserv_register_is_a_register_command() -> None:
    codec = registered()
    (reg,) = commands(codec.receive_data(b"PRIVMSG NickServ :REGISTER hunter22 a@b.c\r\n"))
    assert isinstance(reg, Register) and reg.password == "hunter22"
    wire = codec.render(Ok(ref=reg.ref))
    assert wire.startswith(b":NickServ!NickServ@chinwag NOTICE alice :alice is registered")


def test_chathistory_latest_is_history_and_before_the_newest_before_a_point() -> None:
    codec = registered()
    items = commands(
        codec.receive_data(
            b"CHATHISTORY LATEST #lobby * 20\r\nCHATHISTORY BEFORE bob msgid=42 500\r\n"
        )
    )
    latest, before = items
    assert isinstance(latest, History) and (latest.room, latest.before, latest.limit) == (
        "lobby",
        None,
        20,
    )
    assert isinstance(before, HistoryRange)
    assert (before.with_, before.before, before.newest, before.limit) == ("bob", 42, True, 100)


def test_chathistory_after_around_between_and_latest_after_a_point_are_ranges() -> None:
    codec = registered()
    lines = [
        b"CHATHISTORY AFTER #lobby msgid=7 10",
        b"CHATHISTORY AROUND bob msgid=7 5",
        b"CHATHISTORY BETWEEN #lobby msgid=3 msgid=9 4",
        b"CHATHISTORY BETWEEN #lobby msgid=9 msgid=3 4",  # from the later end: nearest 9
        b"CHATHISTORY LATEST #lobby msgid=7 10",  # the newest after the point
    ]
    items = commands(codec.receive_data(b"\r\n".join(lines) + b"\r\n"))
    shape = [
        (c.room, c.with_, c.after, c.before, c.limit, c.newest, c.around)
        for c in items
        if isinstance(c, HistoryRange)
    ]
    assert shape == [
        ("lobby", None, 7, None, 10, False, None),
        (None, "bob", 0, None, 5, False, 7),
        ("lobby", None, 3, 9, 4, False, None),
        ("lobby", None, 3, 9, 4, True, None),
        ("lobby", None, 7, None, 10, True, None),
    ]


def test_chathistory_timestamps_are_points_in_ms_of_utc() -> None:
    codec = registered()
    t = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    lines = [
        b"CHATHISTORY AFTER #lobby timestamp=2026-01-01T00:00:00.000Z 5",
        b"CHATHISTORY BEFORE #lobby timestamp=2026-01-01T00:00:00.250Z 5",
        b"CHATHISTORY AROUND #lobby timestamp=2026-01-01T01:00:00+01:00 5",
        b"CHATHISTORY BETWEEN #lobby timestamp=2026-01-01T00:00:01Z"
        b" timestamp=2026-01-01T00:00:00Z 5",
        b"CHATHISTORY LATEST #lobby timestamp=2026-01-01T00:00:00 5",  # no zone: UTC
    ]
    items = commands(codec.receive_data(b"\r\n".join(lines) + b"\r\n"))
    shape = [
        (c.after_ms, c.before_ms, c.around_ms, c.newest)
        for c in items
        if isinstance(c, HistoryRange) and c.after == 0 and c.before is None
    ]
    assert shape == [
        (t, None, None, False),
        (0, t + 250, None, True),
        (0, None, t, False),
        (t, t + 1000, None, True),
        (t, None, None, True),
    ]


def test_chathistory_targets_lists_conversations_oldest_first_in_a_batch() -> None:
    codec = registered("batch")
    line = b"CHATHISTORY TARGETS timestamp=2026-01-01T00:00:01Z timestamp=2026-01-01T00:00:00Z 3"
    (req,) = commands(codec.receive_data(line + b"\r\n"))
    t = 1_767_225_600_000
    assert isinstance(req, HistoryTargets)
    assert (req.after_ms, req.before_ms, req.limit, req.newest) == (t, t + 1000, 3, True)
    heads = (
        Message(id=4, ts_ms=t + 100, sender="bob", room="den", body="x"),
        Message(id=7, ts_ms=t + 200, sender="alice", to="7of9", body="y"),
        Message(id=9, ts_ms=t + 300, sender="carl", to="alice", body="z"),
    )
    wire = codec.render(Results(q="", messages=heads, more=False, ref=req.ref))
    lines = [parse_message(x.decode()) for x in wire.split(b"\r\n")[:-1]]
    assert [(m.command, m.params[1:]) for m in lines if m is not None] == [
        ("BATCH", ("draft/chathistory-targets",)),
        ("CHATHISTORY", ("#den", "2026-01-01T00:00:00.100Z")),
        ("CHATHISTORY", ("`7of9", "2026-01-01T00:00:00.200Z")),
        ("CHATHISTORY", ("carl", "2026-01-01T00:00:00.300Z")),
        ("BATCH", ()),
    ]
    assert codec.render(Results(q="x", messages=heads, more=False)) == b""  # not asked


def test_chathistory_limits_and_bad_points_get_fail_saying_what_is_expected() -> None:
    codec = registered()
    (big,) = commands(codec.receive_data(b"CHATHISTORY AFTER #lobby msgid=1 101\r\n"))
    assert isinstance(big, HistoryRange) and big.limit == 100  # ISUPPORT CHATHISTORY=100
    (edge,) = commands(codec.receive_data(b"CHATHISTORY AFTER #lobby msgid=1 1\r\n"))
    assert isinstance(edge, HistoryRange) and edge.limit == 1
    refused = {
        b"CHATHISTORY AFTER #lobby msgid=1 0": b"FAIL CHATHISTORY INVALID_PARAMS 0 :The limit",
        b"CHATHISTORY AFTER #lobby msgid=1 ten": b"INVALID_PARAMS ten :The limit",
        b"CHATHISTORY AFTER #lobby timestamp=yesterday 5": b"INVALID_PARAMS timestamp=yesterday",
        b"CHATHISTORY BETWEEN #lobby msgid=1 timestamp=2026-01-01T00:00:00Z 5": b"one kind",
        b"CHATHISTORY BEFORE #lobby * 5": b"INVALID_PARAMS * :Point to a message by msgid",
        b"CHATHISTORY AFTER #lobby id=3 5": b"INVALID_PARAMS id=3 :Point to a message",
        b"CHATHISTORY BETWEEN #lobby msgid=1 5": b"FAIL CHATHISTORY NEED_MORE_PARAMS BETWEEN",
        b"CHATHISTORY TARGETS timestamp=a timestamp=b 5": b"INVALID_PARAMS timestamp=a :Point",
        b"CHATHISTORY TARGETS msgid=1 timestamp=2026-01-01T00:00:00Z 5": b"two timestamps",
        b"CHATHISTORY FROB #lobby 5": b"INVALID_PARAMS FROB :",
    }
    for line, answer in refused.items():
        items = codec.receive_data(line + b"\r\n")
        assert commands(items) == [] and answer in replies(items), line


def test_a_channel_one_may_not_read_is_invalid_target_and_an_unknown_nick_empty() -> None:
    codec = registered("batch")

    def shape(wire: bytes) -> list[tuple[str, tuple[str, ...]]]:
        """The lines without the batch id (which differs between any two batches)."""
        lines = [parse_message(line.decode()) for line in wire.split(b"\r\n")[:-1]]
        return [(m.command, m.params[1:]) for m in lines if m is not None]

    (req,) = commands(codec.receive_data(b"CHATHISTORY AFTER #empty msgid=1 10\r\n"))
    empty = shape(codec.render(HistoryReply(room="empty", messages=(), more=False, ref=req.ref)))
    assert empty == [("BATCH", ("chathistory", "#empty")), ("BATCH", ())]
    for code in ("not_member", "bad_room"):
        (req,) = commands(codec.receive_data(b"CHATHISTORY LATEST #elsewhere * 10\r\n"))
        wire = codec.render(Error(code=code, message="no", ref=req.ref))
        [(command, params)] = shape(wire)
        assert (command, params[:3]) == ("FAIL", ("INVALID_TARGET", "LATEST", "#elsewhere"))
    (req,) = commands(codec.receive_data(b"CHATHISTORY AFTER x msgid=1 10\r\n"))
    wire = codec.render(Error(code="no_such_user", message="no", ref=req.ref))
    assert shape(wire) == [("BATCH", ("chathistory", "x")), ("BATCH", ())]


def test_draft_chathistory_is_offered_and_msgid_is_the_only_reference_type() -> None:
    codec = IrcServerCodec()
    assert b"draft/chathistory" in replies(codec.receive_data(b"CAP LS 302\r\n"))
    codec.receive_data(b"CAP REQ :draft/chathistory batch\r\nNICK alice\r\nUSER a 0 * :A\r\n")
    (hello,) = commands(codec.receive_data(b"CAP END\r\n"))
    wire = codec.render(replace(WELCOME, ref=hello.ref))
    assert b" CHATHISTORY=100 MSGREFTYPES=msgid,timestamp " in wire


def test_unknown_commands_get_421() -> None:
    codec = registered()
    assert b" 421 alice FROB :" in replies(codec.receive_data(b"FROB\r\n"))


# --- rendering ---------------------------------------------------------------------------


def test_a_room_message_carries_time_and_msgid_only_when_negotiated() -> None:
    msg = Message(id=42, ts_ms=1_700_000_000_123, sender="bob", room="lobby", body="hello")
    assert registered().render(msg) == b":bob!bob@chinwag PRIVMSG #lobby hello\r\n"
    tagged = registered("server-time message-tags").render(msg)
    assert tagged == (
        b"@time=2023-11-14T22:13:20.123Z;msgid=42 :bob!bob@chinwag PRIVMSG #lobby hello\r\n"
    )


def test_a_body_with_newlines_or_too_long_is_split_into_several_privmsgs() -> None:
    codec = registered()
    body = "one\ntwo\n" + "é" * 400
    wire = codec.render(Message(id=1, ts_ms=0, sender="bob", to="alice", body=body))
    lines = wire.split(b"\r\n")[:-1]
    assert len(lines) == 4
    source = len(b":bob!bob@chinwag ")
    assert all(len(line) + 2 <= MAX_LINE + source for line in lines)
    texts = [parse_message(line.decode()) for line in lines]
    assert "".join(m.params[1] for m in texts[2:] if m is not None) == "é" * 400


def test_a_text_that_fit_the_senders_line_is_relayed_in_one_line() -> None:
    sender = registered()
    prefix = b"PRIVMSG bob "  # without a colon: the longest text a line can hold
    (dm,) = commands(sender.receive_data(prefix + b"x" * (MAX_LINE - 2 - len(prefix)) + b"\r\n"))
    assert isinstance(dm, Dm)
    reader = registered()
    wire = reader.render(Message(id=1, ts_ms=0, sender="alice", to="bob", body=dm.body))
    assert wire == b":alice!alice@chinwag PRIVMSG bob " + dm.body.encode() + b"\r\n"
    longer = reader.render(Message(id=2, ts_ms=0, sender="alice", to="bob", body=dm.body + "y"))
    assert longer.count(b"PRIVMSG") == 2


def test_a_replayed_message_without_server_time_shows_its_time_in_the_text() -> None:
    codec = registered()
    msg = Message(id=1, ts_ms=0, sender="bob", to="alice", body="missed", replay=True)
    assert codec.render(msg) == b":bob!bob@chinwag PRIVMSG alice :[1970-01-01 00:00 UTC] missed\r\n"


def test_an_ack_is_the_echo_with_echo_message_and_nothing_without() -> None:
    plain = registered()
    (say,) = commands(plain.receive_data(b"PRIVMSG #lobby :mine\r\n"))
    assert plain.render(Ack(id=9, ts_ms=0, ref=say.ref)) == b""
    echo = registered("echo-message message-tags")
    (say,) = commands(echo.receive_data(b"PRIVMSG #lobby :mine\r\n"))
    wire = echo.render(Ack(id=9, ts_ms=0, ref=say.ref))
    assert wire == b"@msgid=9 :alice!alice@chinwag PRIVMSG #lobby mine\r\n"


def test_labeled_response_tags_the_answer() -> None:
    codec = registered("labeled-response echo-message")
    (say,) = commands(codec.receive_data(b"@label=L1 PRIVMSG #lobby :x\r\n"))
    assert codec.render(Ack(id=1, ts_ms=0, ref=say.ref)).startswith(b"@label=L1 :alice!")


def test_errors_become_the_numeric_of_the_refused_command() -> None:
    codec = registered()
    (dm,) = commands(codec.receive_data(b"PRIVMSG nobody :hi\r\n"))
    wire = codec.render(Error(code="no_such_user", message="No such user", ref=dm.ref))
    assert wire == b":chinwag 401 alice nobody :No such user\r\n"
    (say,) = commands(codec.receive_data(b"PRIVMSG #elsewhere :hi\r\n"))
    wire = codec.render(Error(code="not_member", message="Join it first", ref=say.ref))
    assert wire == b":chinwag 404 alice #elsewhere :Join it first\r\n"
    (say,) = commands(codec.receive_data(b"PRIVMSG #lobby :hi\r\n"))
    wire = codec.render(Error(code="rate_limited", message="Slow down", ref=say.ref))
    assert wire == b":chinwag FAIL PRIVMSG RATE_LIMITED :Slow down\r\n"


def test_presence_join_and_part_of_others_and_own_join_confirmed() -> None:
    codec = registered()
    assert codec.render(Presence(room="lobby", nick="bob", event="join")) == (
        b":bob!bob@chinwag JOIN #lobby\r\n"
    )
    assert codec.render(Presence(room="lobby", nick="bob", event="leave")) == (
        b":bob!bob@chinwag PART #lobby\r\n"
    )
    assert codec.render(Presence(room="lobby", nick="alice", event="join")) == b""
    (join,) = commands(codec.receive_data(b"JOIN #dev\r\n"))
    assert codec.render(Ok(ref=join.ref)).startswith(b":alice!alice@chinwag JOIN #dev\r\n")


def test_names_who_and_list_replies() -> None:
    codec = registered()
    (names, who) = commands(codec.receive_data(b"NAMES #lobby\r\nWHO #lobby\r\n"))
    users = (WhoMember(nick="alice", account=True), WhoMember(nick="bob", account=False))
    reply = WhoReply(room="lobby", users=users, truncated=False)
    assert isinstance(names, Who) and isinstance(who, Who)
    wire = codec.render(WhoReply(room=reply.room, users=users, truncated=False, ref=names.ref))
    assert b" 353 alice = #lobby :alice bob\r\n" in wire and b" 366 " in wire
    wire = codec.render(WhoReply(room=reply.room, users=users, truncated=False, ref=who.ref))
    assert wire.count(b" 352 ") == 2 and b" 315 " in wire
    rooms = RoomsReply(rooms=(RoomRow(name="lobby", online=2),), truncated=False)
    assert b" 322 alice #lobby 2 :\r\n" in codec.render(rooms)


def test_history_is_a_chathistory_batch_when_batch_is_enabled() -> None:
    codec = registered("batch server-time message-tags")
    (req,) = commands(codec.receive_data(b"CHATHISTORY LATEST #lobby * 10\r\n"))
    msgs = (Message(id=1, ts_ms=0, sender="bob", room="lobby", body="old"),)
    wire = codec.render(HistoryReply(room="lobby", messages=msgs, more=False, ref=req.ref))
    lines = wire.split(b"\r\n")[:-1]
    assert lines[0].startswith(b":chinwag BATCH +") and lines[0].endswith(b" chathistory #lobby")
    assert lines[1].startswith(b"@batch=") and b"msgid=1" in lines[1]
    assert lines[2].startswith(b":chinwag BATCH -")


def test_caught_up_tells_how_many_were_missed() -> None:
    codec = registered()
    wire = codec.render(CaughtUp(missed=3, rooms={}, dms={"bob": 3}, truncated=False))
    assert wire.startswith(b":chinwag NOTICE alice :You missed 3 messages")
    assert codec.render(CaughtUp(missed=0, rooms={}, dms={}, truncated=False)) == b""


def test_a_pong_to_a_seen_ping_confirms_what_was_sent_before_it() -> None:
    codec = registered()  # an account (WELCOME.account)
    codec.render(Message(id=5, ts_ms=0, sender="bob", to="alice", body="missed", replay=True))
    wire = codec.render(CaughtUp(missed=1, rooms={}, dms={"bob": 1}, truncated=False))
    assert wire.endswith(b":chinwag PING seen-5\r\n")
    items = commands(codec.receive_data(b"PONG chinwag :seen-5\r\n"))
    assert [type(i).__name__ for i in items] == ["Pong", "Seen"]
    assert isinstance(items[1], Seen) and items[1].upto == 5
    assert [type(i).__name__ for i in commands(codec.receive_data(b"PONG :other\r\n"))] == ["Pong"]


def test_a_guest_is_pinged_without_a_cursor_token() -> None:
    codec = IrcServerCodec()
    (hello,) = commands(codec.receive_data(b"NICK bob\r\nUSER bob 0 * :B\r\n"))
    codec.render(replace(WELCOME, nick="bob", account=False, ref=hello.ref))
    codec.render(Message(id=5, ts_ms=0, sender="ann", room="lobby", body="hi"))
    assert codec.render(Ping()) == b":chinwag PING chinwag\r\n"


def test_a_join_asks_for_the_names_of_the_room() -> None:
    codec = IrcServerCodec()
    (hello,) = commands(codec.receive_data(b"NICK alice\r\nUSER a 0 * :A\r\n"))
    codec.render(replace(WELCOME, ref=hello.ref))
    (names,) = codec.followups
    assert isinstance(names, Who) and names.room == "lobby"
    users = (
        WhoMember(nick="alice", account=True, role="mod"),
        WhoMember(nick="bob", account=False),
    )
    wire = codec.render(WhoReply(room="lobby", users=users, truncated=False, ref=names.ref))
    assert wire.startswith(b":chinwag 353 alice = #lobby :@alice bob\r\n")  # a mod is an op


def test_mode_and_topic_queries_are_answered_from_the_room_info() -> None:
    codec = registered()
    (info,) = commands(codec.receive_data(b"TOPIC #lobby\r\n"))  # joined at login: ask once
    assert isinstance(info, Join) and info.room == "lobby"  # a join of a room one is in
    codec.render(Ok(ref=info.ref))
    answer = codec.render(RoomInfo(room="lobby", topic="", private=False, announce=False))
    assert answer == b":chinwag 331 alice #lobby :No topic is set\r\n"
    wire = replies(codec.receive_data(b"MODE #lobby\r\nMODE alice\r\nTOPIC #lobby\r\n"))
    assert wire.split(b"\r\n")[:-1] == [
        b":chinwag 324 alice #lobby +nt",
        b":chinwag 221 alice +",
        b":chinwag 331 alice #lobby :No topic is set",
    ]
    changed = RoomInfo(room="lobby", topic="chess", private=False, announce=True, by="olga")
    assert codec.render(changed) == (
        b":olga!olga@chinwag TOPIC #lobby chess\r\n:olga!olga@chinwag MODE #lobby +m\r\n"
    )
    wire = replies(codec.receive_data(b"MODE #lobby\r\nTOPIC #lobby\r\n"))
    assert wire == b":chinwag 324 alice #lobby +ntm\r\n:chinwag 332 alice #lobby chess\r\n"
    (listing,) = commands(codec.receive_data(b"MODE #lobby b\r\n"))  # the ban list (ircwho)
    assert isinstance(listing, ListBans) and listing.room == "lobby"
    ban = BanRow(nick="bob", by="olga", ts_ms=1_700_000_000_123)
    assert codec.render(BansReply(room="lobby", bans=(ban,), ref=listing.ref)) == (
        b":chinwag 367 alice #lobby bob!*@* olga 1700000000\r\n"
        b":chinwag 368 alice #lobby :End of channel ban list\r\n"
    )


def test_a_query_of_a_channel_not_joined_tells_442_from_403_by_the_room_list() -> None:
    codec = registered()
    (listing,) = commands(codec.receive_data(b"TOPIC #den\r\n"))
    assert isinstance(listing, ListRooms)
    rows = (RoomRow(name="den", online=1),)
    answer = codec.render(RoomsReply(rooms=rows, truncated=False, ref=listing.ref))
    assert answer.startswith(b":chinwag 442 alice #den ")
    (listing,) = commands(codec.receive_data(b"MODE #nowhere\r\n"))
    answer = codec.render(RoomsReply(rooms=rows, truncated=False, ref=listing.ref))
    assert answer.startswith(b":chinwag 403 alice #nowhere ")


def test_topic_mode_kick_and_invite_become_moderation_requests() -> None:
    codec = registered()
    items = codec.receive_data(
        b"TOPIC #den :chess\r\nMODE #den +o-o+im bob carl\r\nMODE #den +b-b bob!*@* `7of9\r\n"
        b"KICK #den bob,carl :spam\r\nINVITE dora #den\r\n"
    )
    assert [replace(c, ref=None) for c in commands(items)] == [
        RoomSet(room="den", topic="chess"),
        Grant(room="den", nick="bob", role="mod"),
        Grant(room="den", nick="carl", role="member"),
        RoomSet(room="den", private=True),
        RoomSet(room="den", announce=True),
        Moderate(action="ban", room="den", nick="bob"),
        Moderate(action="unban", room="den", nick="7of9"),
        Moderate(action="kick", room="den", nick="bob", reason="spam"),
        Moderate(action="kick", room="den", nick="carl", reason="spam"),
        Invite(room="den", nick="dora"),
    ]


def test_modes_chinwag_lacks_and_masks_naming_no_nick_are_refused_saying_why() -> None:
    codec = registered()
    wire = replies(
        codec.receive_data(b"MODE #den +z key\r\nMODE #den -n\r\nMODE #den +b *!*@host\r\n")
    )
    lines = wire.split(b"\r\n")[:-1]
    assert lines[0] == b":chinwag 472 alice z :is not a channel mode on chinwag"
    assert lines[1].startswith(b":chinwag 472 alice n :is always on here")
    assert lines[2].startswith(b":chinwag 696 alice #den b *!*@host :A ban here is of a nick")
    assert commands(codec.receive_data(b"MODE #den +n\r\n")) == []  # always on: nothing


def test_topic_lock_secret_and_voice_modes_are_room_settings_and_voice() -> None:
    codec = registered()
    sent = commands(codec.receive_data(b"MODE #den -t+s\r\nMODE #den +v-v bob carl\r\n"))
    assert [replace(c, ref=None) for c in sent] == [
        RoomSet(room="den", topic_locked=False),
        RoomSet(room="den", secret=True),
        Moderate(action="voice", room="den", nick="bob"),
        Moderate(action="unvoice", room="den", nick="carl"),
    ]
    wire = replies(codec.receive_data(b"MODE #den +v\r\n"))
    assert b" 461 alice MODE :Not enough parameters" in wire


def test_refusals_of_moderation_are_the_numerics_irc_clients_know() -> None:
    codec = registered()
    cases = [
        (
            b"TOPIC #lobby :x",
            Error(code="forbidden", message="only its owner", extra={"reason": "not_allowed"}),
            b"482 alice #lobby ",
        ),
        (
            b"KICK #lobby bob",
            Error(code="not_member", message="bob is not in #lobby"),
            b"441 alice bob #lobby ",
        ),
        (
            b"KICK #den bob",
            Error(code="not_member", message="you are not in #den"),
            b"442 alice #den ",
        ),
        (
            b"KICK #gone bob",
            Error(code="not_member", message="there is no room #gone", extra={"reason": "no_room"}),
            b"403 alice #gone ",
        ),
        (
            b"MODE #lobby +o zed",
            Error(code="no_such_user", message="nobody called zed"),
            b"401 alice zed ",
        ),
        (
            b"INVITE bob #lobby",
            Error(
                code="bad_request", message="bob is in #lobby already", extra={"reason": "member"}
            ),
            b"443 alice bob #lobby ",
        ),
    ]
    for line, error, numeric in cases:
        (cmd,) = commands(codec.receive_data(line + b"\r\n"))
        wire = codec.render(replace(error, ref=cmd.ref))
        assert wire.startswith(b":chinwag " + numeric), (line, wire)


def test_kicks_bans_grants_and_invites_are_told_as_irc_lines() -> None:
    codec = registered()
    kick = Presence(room="lobby", nick="bob", event="kick", by="olga", reason="")
    assert codec.render(kick) == b":olga!olga@chinwag KICK #lobby bob olga\r\n"
    ban = Presence(room="lobby", nick="bob", event="ban", by="olga", reason="spam")
    assert codec.render(ban) == (
        b":olga!olga@chinwag MODE #lobby +b bob!*@*\r\n:olga!olga@chinwag KICK #lobby bob spam\r\n"
    )
    grant = Presence(room="lobby", nick="bob", event="grant", by="olga", role="mod")
    assert codec.render(grant) == b":olga!olga@chinwag MODE #lobby +o bob\r\n"
    mute = Presence(room="lobby", nick="bob", event="mute", by="olga", reason="")
    assert codec.render(mute) == b""
    invited = Presence(room="den", nick="alice", event="invite", by="olga", reason="")
    assert codec.render(invited) == b":olga!olga@chinwag INVITE alice #den\r\n"
    kicked = Presence(room="lobby", nick="alice", event="kick", by="olga", reason="bye")
    assert codec.render(kicked) == b":olga!olga@chinwag KICK #lobby alice bye\r\n"
    (join,) = commands(codec.receive_data(b"JOIN #lobby\r\n"))  # out of it now: a real join
    assert isinstance(join, Join)


def test_a_join_of_a_channel_already_joined_is_ignored_and_a_part_forgets_it() -> None:
    codec = registered()  # in #lobby since the welcome
    assert commands(codec.receive_data(b"JOIN #Lobby\r\n")) == []
    (part,) = commands(codec.receive_data(b"PART #lobby\r\n"))
    codec.render(Ok(ref=part.ref))
    (join,) = commands(codec.receive_data(b"JOIN #lobby\r\n"))
    assert isinstance(join, Join) and join.room == "lobby"


def test_lines_the_codec_answers_carry_the_label_too() -> None:
    codec = registered("labeled-response")
    assert replies(codec.receive_data(b"@label=a PING :t\r\n")) == (
        b"@label=a :chinwag PONG chinwag t\r\n"
    )
    pong = codec.receive_data(b"@label=b PONG :x\r\n")  # nothing else answers a PONG
    assert commands(pong) == [Pong()] and replies(pong) == b"@label=b :chinwag ACK\r\n"
    typing = codec.receive_data(b"@label=g;+typing=active TAGMSG #lobby\r\n")
    assert commands(typing) == [Typing(room="lobby")]
    assert replies(typing) == b"@label=g :chinwag ACK\r\n"
    assert replies(codec.receive_data(b"@label=c CAP END\r\n")) == b"@label=c :chinwag ACK\r\n"
    (info,) = commands(codec.receive_data(b"@label=d MODE #lobby\r\n"))  # asked once
    codec.render(Ok(ref=info.ref))
    answer = codec.render(RoomInfo(room="lobby", topic="", private=False, announce=False))
    assert answer == b"@label=d :chinwag 324 alice #lobby +nt\r\n"
    single = replies(codec.receive_data(b"@label=g MODE #lobby\r\n"))  # known now
    assert single == b"@label=g :chinwag 324 alice #lobby +nt\r\n"
    several = replies(codec.receive_data(b"@label=e NAMES\r\n"))
    assert several.startswith(b"@label=e :chinwag 366 ")
    ignored = replies(codec.receive_data(b"@label=f JOIN #lobby\r\n"))  # joined already
    assert ignored == b"@label=f :chinwag ACK\r\n"


def test_a_labeled_answer_of_several_lines_is_a_batch_when_batch_is_enabled() -> None:
    users = (WhoMember(nick="alice", account=True),)
    for caps, batched in (("labeled-response batch", True), ("labeled-response", False)):
        codec = registered(caps)
        (names,) = commands(codec.receive_data(b"@label=g NAMES #lobby\r\n"))
        wire = codec.render(WhoReply(room="lobby", users=users, truncated=False, ref=names.ref))
        lines = wire.split(b"\r\n")[:-1]
        if batched:
            assert lines[0] == b"@label=g :chinwag BATCH +L labeled-response"
            assert all(line.startswith(b"@batch=L ") for line in lines[1:-1])
            assert lines[-1] == b":chinwag BATCH -L"
        else:
            assert lines[0].startswith(b":chinwag 353 ") and b"label" not in wire


def test_the_sasl_account_can_name_the_device_as_irc_clients_send_user_after_sasl() -> None:
    codec = IrcServerCodec()
    codec.receive_data(b"CAP LS 302\r\nCAP REQ :sasl\r\nAUTHENTICATE PLAIN\r\n")
    token = base64.b64encode(b"\0alice@tablet\0hunter22").decode()
    (hello,) = commands(codec.receive_data(f"AUTHENTICATE {token}\r\n".encode()))
    assert isinstance(hello, Hello) and (hello.nick, hello.device) == ("alice", "tablet")


def test_a_device_that_cannot_be_one_is_refused_saying_what_it_may_be() -> None:
    codec = IrcServerCodec()
    items = codec.receive_data(b"NICK bob\r\nUSER bob@my.phone 0 * :B\r\n")
    assert b"FAIL USER INVALID_USERNAME :after @ comes the device" in replies(items)
    assert commands(items) == []
    codec.receive_data(b"CAP LS 302\r\nCAP REQ :sasl\r\nAUTHENTICATE PLAIN\r\n")
    token = base64.b64encode(b"\0bob@\xc3\xa9\0hunter22").decode()
    items = codec.receive_data(f"AUTHENTICATE {token}\r\n".encode())
    assert b" 904 " in replies(items) and commands(items) == []


def test_a_notice_is_echoed_as_a_notice_and_names_can_carry_user_and_host() -> None:
    codec = registered("echo-message userhost-in-names multi-prefix")
    (say,) = commands(codec.receive_data(b"NOTICE #lobby :heads up\r\n"))
    assert codec.render(Ack(id=3, ts_ms=0, ref=say.ref)) == (
        b":alice!alice@chinwag NOTICE #lobby :heads up\r\n"
    )
    (names,) = commands(codec.receive_data(b"NAMES #lobby\r\n"))
    users = (WhoMember(nick="bob", account=False),)
    wire = codec.render(WhoReply(room="lobby", users=users, truncated=False, ref=names.ref))
    assert wire.startswith(b":chinwag 353 alice = #lobby bob!bob@chinwag\r\n")


def test_the_hub_s_copy_of_one_s_own_message_is_not_shown_again() -> None:
    codec = registered("echo-message")
    (say,) = commands(codec.receive_data(b"PRIVMSG #lobby :mine\r\n"))
    assert isinstance(say, Say) and say.cid is not None
    assert codec.render(Ack(id=4, ts_ms=0, cid=say.cid, ref=say.ref)) != b""
    own = Message(id=4, ts_ms=0, sender="alice", room="lobby", body="mine", cid=say.cid)
    assert codec.render(own) == b""
    # Another session of the account has its own cids: its message is shown.
    other = registered()
    (theirs,) = commands(other.receive_data(b"PRIVMSG #lobby :mine\r\n"))
    assert isinstance(theirs, Say) and theirs.cid != say.cid
    assert other.render(own) == b":alice!alice@chinwag PRIVMSG #lobby mine\r\n"


def test_empty_privmsgs_refused_notices_silent_and_names_of_nowhere_ends_the_list() -> None:
    codec = registered()
    assert b" 411 alice :No recipient given" in replies(codec.receive_data(b"PRIVMSG\r\n"))
    assert b" 412 alice :No text to send" in replies(codec.receive_data(b"PRIVMSG #a :\r\n"))
    (notice,) = commands(codec.receive_data(b"NOTICE #elsewhere :hi\r\n"))
    assert codec.render(Error(code="not_member", message="Join it", ref=notice.ref)) == b""
    (names,) = commands(codec.receive_data(b"NAMES #nowhere\r\n"))
    wire = codec.render(Error(code="not_member", message="Join it", ref=names.ref))
    assert wire == b":chinwag 366 alice #nowhere :End of /NAMES list\r\n"


def test_the_offline_replay_comes_in_chathistory_batches_when_batch_is_enabled() -> None:
    codec = registered("batch server-time message-tags")
    wire = b"".join(
        codec.render(m)
        for m in (
            Message(id=1, ts_ms=0, sender="bob", to="alice", body="one", replay=True),
            Message(id=2, ts_ms=0, sender="bob", to="alice", body="two", replay=True),
            Message(id=3, ts_ms=0, sender="carl", room="lobby", body="three", replay=True),
        )
    )
    wire += codec.render(CaughtUp(missed=3, rooms={"lobby": 1}, dms={"bob": 2}, truncated=False))
    lines = [parse_message(line.decode()) for line in wire.split(b"\r\n")[:-1]]
    ids: dict[str, str] = {}  # batch ids as A, B… in order of appearance

    def named(ref: str | None) -> str | None:
        if ref is None:
            return None
        key = ref.lstrip("+-")
        if key not in ids:
            ids[key] = chr(ord("A") + len(ids))
        return ids[key]

    shape = [
        (
            m.command,
            m.params[:3],
            named(m.tags.get("batch") or (m.params[0] if m.command == "BATCH" else None)),
        )
        for m in lines
        if m is not None
    ]
    assert shape == [
        ("BATCH", (shape[0][1][0], "chathistory", "bob"), "A"),
        ("PRIVMSG", ("alice", "one"), "A"),
        ("PRIVMSG", ("alice", "two"), "A"),
        ("BATCH", (shape[0][1][0].replace("+", "-"),), "A"),
        ("BATCH", (shape[4][1][0], "chathistory", "#lobby"), "B"),
        ("PRIVMSG", ("#lobby", "three"), "B"),
        ("BATCH", (shape[4][1][0].replace("+", "-"),), "B"),
        ("NOTICE", ("alice", "You missed 3 messages while away; they are above"), None),
        ("PING", ("seen-3",), None),
    ]


# --- protocol 1.1 events (docs/irc.md: edits and deletions as notices) ------------------


def test_edits_and_deletions_reach_irc_as_notices_from_their_author() -> None:
    codec = registered("message-tags")
    edited = Edited(id=9, ts_ms=0, target=4, sender="bob", room="lobby", body="fixed text")
    assert codec.render(edited) == (
        b"@msgid=9;+draft/reply=4 :bob!bob@chinwag NOTICE #lobby :(edited message 4) fixed text\r\n"
    )
    deleted = Deleted(id=10, ts_ms=0, target=5, by="bob", to="alice")
    assert codec.render(deleted) == (
        b"@msgid=10;+draft/reply=5 :bob!bob@chinwag NOTICE alice :(deleted message 5)\r\n"
    )
    assert registered().render(deleted) == (
        b":bob!bob@chinwag NOTICE alice :(deleted message 5)\r\n"
    )


def test_with_message_redaction_a_deletion_is_redact_from_who_deleted() -> None:
    codec = registered("draft/message-redaction")
    room = Deleted(id=10, ts_ms=0, target=5, by="bob", room="lobby")
    assert codec.render(room) == b":bob!bob@chinwag REDACT #lobby 5\r\n"
    mine = Deleted(id=11, ts_ms=0, target=6, by="alice", to="bob")
    assert codec.render(mine) == b":alice!alice@chinwag REDACT bob 6\r\n"


def test_redact_is_a_delete_and_its_refusals_use_the_redaction_codes() -> None:
    codec = registered("draft/message-redaction echo-message")
    (delete,) = commands(codec.receive_data(b"REDACT #lobby 42 :typo\r\n"))
    assert isinstance(delete, Delete) and delete.id == 42
    # Done: echoed at once (before anything asked later), and the hub's copy is not shown.
    echo = codec.render(Ack(id=50, ts_ms=0, ref=delete.ref))
    assert echo == b":alice!alice@chinwag REDACT #lobby 42 typo\r\n"
    copy = Deleted(id=50, ts_ms=0, target=42, by="alice", room="lobby")
    assert codec.shared([copy]) is None and codec.render(copy) == b""
    assert codec.render(replace(copy, id=51)) != b""  # only once
    plain = registered("echo-message")
    (delete,) = commands(plain.receive_data(b"REDACT #lobby 42\r\n"))
    assert plain.render(Ack(id=50, ts_ms=0, ref=delete.ref)) == b""  # the NOTICE copy will come
    items = codec.receive_data(b"REDACT #elsewhere 42\r\n")
    assert commands(items) == [] and b"FAIL REDACT INVALID_TARGET #elsewhere" in replies(items)
    for code, reason in (("forbidden", b"REDACT_FORBIDDEN"), ("not_found", b"UNKNOWN_MSGID")):
        (delete,) = commands(codec.receive_data(b"REDACT #lobby 42\r\n"))
        wire = codec.render(Error(code=code, message="no", ref=delete.ref))
        assert wire == b":chinwag FAIL REDACT " + reason + b" #lobby 42 no\r\n"
    items = codec.receive_data(b"REDACT #lobby\r\nREDACT #lobby abc\r\n")
    assert commands(items) == []
    assert b"FAIL REDACT NEED_MORE_PARAMS" in replies(items)
    assert b"FAIL REDACT UNKNOWN_MSGID #lobby abc" in replies(items)


def test_a_react_tagmsg_is_a_react_and_reactions_reach_irc_as_react_tagmsgs() -> None:
    codec = registered("message-tags")
    line = "@+draft/react=👍;+draft/reply=42 TAGMSG #lobby\r\n".encode()
    (react,) = commands(codec.receive_data(line))
    assert isinstance(react, React) and (react.id, react.emoji, react.on) == (42, "👍", True)
    line = "@+draft/unreact=👍;+draft/reply=42 TAGMSG #lobby\r\n".encode()
    (unreact,) = commands(codec.receive_data(line))
    assert isinstance(unreact, React) and not unreact.on
    bad = codec.receive_data("@+draft/react=👍 TAGMSG #lobby\r\n".encode())
    assert commands(bad) == [] and b"FAIL TAGMSG INVALID_PARAMS #lobby" in replies(bad)
    (typing,) = commands(codec.receive_data(b"@+typing=active TAGMSG bob\r\n"))
    assert isinstance(typing, Typing) and typing.to == "bob"
    assert codec.receive_data(b"@+other=1 TAGMSG #lobby\r\n") == []  # not relayed
    on = Reacted(id=12, ts_ms=0, target=4, sender="bob", room="lobby", emoji="👍", on=True)
    assert codec.render(on) == (
        "@msgid=12;+draft/react=👍;+draft/reply=4 :bob!bob@chinwag TAGMSG #lobby\r\n".encode()
    )
    off = replace(on, id=13, on=False)
    assert b"+draft/unreact=" in codec.render(off)
    assert registered().render(on) == b""  # plain IRC cannot carry a reaction


def test_account_tag_names_the_account_of_a_message_and_never_a_guest() -> None:
    codec = registered("account-tag")
    account = Message(id=1, ts_ms=0, sender="bob", room="lobby", body="hi", account=True)
    guest = Message(id=2, ts_ms=0, sender="guest1", room="lobby", body="hi")
    assert codec.render(account) == b"@account=bob :bob!bob@chinwag PRIVMSG #lobby hi\r\n"
    assert codec.render(guest) == b":guest1!guest1@chinwag PRIVMSG #lobby hi\r\n"
    assert registered().render(account) == b":bob!bob@chinwag PRIVMSG #lobby hi\r\n"


def test_read_markers_receipts_and_results_are_not_sent_to_irc_yet() -> None:
    codec = registered()
    for event in (
        ReadMarker(room="lobby", upto=11),
        Receipt(with_="bob", upto=11, state="read"),
        Results(q="x", messages=(), more=False),
    ):
        assert codec.render(event) == b""


def test_an_account_s_nick_change_is_refused_with_447_and_a_guest_s_is_a_rename() -> None:
    account = registered()  # WELCOME is an account's
    assert account.receive_data(b"NICK ALICE\r\n") == []  # the nick one has: nothing
    wire = replies(account.receive_data(b"NICK bob\r\n"))
    assert wire.startswith(b":chinwag 447 alice bob :Your nick is your account's name")
    guest = IrcServerCodec()
    (hello,) = commands(guest.receive_data(b"NICK gus\r\nUSER gus 0 * :Gus\r\n"))
    guest.render(replace(WELCOME, nick="gus", account=False, ref=hello.ref))
    assert guest.receive_data(b"NICK gus\r\n") == []  # the same nick: nothing
    (rename,) = commands(guest.receive_data(b"NICK gustav\r\n"))  # ircmsg
    assert isinstance(rename, Rename) and rename.nick == "gustav"
    answer = Presence(room="", nick="gus", event="nick", new="gustav", ref=rename.ref)
    assert guest.render(answer) == b":gus!gus@chinwag NICK gustav\r\n"
    assert guest.nick == "gustav"
    (taken,) = commands(guest.receive_data(b"NICK bob\r\n"))
    refused = guest.render(Error(code="nick_taken", message="bob is online", ref=taken.ref))
    assert refused.startswith(b":chinwag 433 gustav bob :Nickname is already in use")
    assert b" 432 gustav b@d " in replies(guest.receive_data(b"NICK b@d\r\n"))
    assert b" 431 " in replies(guest.receive_data(b"NICK\r\n"))
    before = IrcServerCodec()
    assert b" 431 * :No nickname given" in replies(before.receive_data(b"NICK :\r\n"))
    assert guest.nick == "gustav" and account.nick == "alice"


def test_nicks_irc_cannot_start_with_are_carried_with_a_backtick_and_back() -> None:
    for nick in ("7of9", "-dash", "0", "-"):
        assert irc_nick(nick) == "`" + nick and chinwag_nick(irc_nick(nick)) == nick
    for nick in ("alice", "_x", "été", "a7", "`alice", "`"):
        assert irc_nick(nick) == nick and chinwag_nick(nick) == nick  # no change either way
    codec = registered("message-tags")
    dm = Message(id=3, ts_ms=0, sender="7of9", to="alice", body="hi", account=True)
    assert codec.render(dm) == b"@msgid=3 :`7of9!`7of9@chinwag PRIVMSG alice hi\r\n"
    (out,) = commands(codec.receive_data(b"PRIVMSG `7of9 :hello\r\n"))
    assert isinstance(out, Dm) and out.to == "7of9"
    guest = IrcServerCodec()
    refused = replies(guest.receive_data(b"NICK 8ball\r\n"))
    assert b" 432 * 8ball :" in refused and b"(chinwag's nick 8ball is `8ball on IRC)" in refused
    (hello,) = commands(guest.receive_data(b"NICK `8ball\r\nUSER e 0 * :E\r\n"))
    assert isinstance(hello, Hello) and hello.nick == "8ball"
    wire = guest.render(replace(WELCOME, nick="8ball", account=False, ref=hello.ref))
    assert b" 001 `8ball :" in wire and b":`8ball!`8ball@chinwag JOIN #lobby" in wire


def test_whois_asks_the_hub_for_the_nick_and_answers_from_its_reply() -> None:
    codec = registered()
    (ask,) = commands(codec.receive_data(b"WHOIS `7of9\r\n"))
    assert isinstance(ask, Whois) and ask.mask == "7of9"  # anyone online, not channels
    seven = WhoMember(nick="7of9", account=True, bot=True, oper=True, user="u", real_name="R N")
    wire = codec.render(WhoisReply(mask="7of9", users=(seven,), ref=ask.ref))
    lines = [parse_message(line.decode()) for line in wire.split(b"\r\n")[:-1]]
    assert [(m.command, m.params[1:]) for m in lines if m is not None] == [
        ("311", ("`7of9", "u", "chinwag", "*", "R N")),
        ("312", ("`7of9", "chinwag", "chinwag")),
        ("313", ("`7of9", "is an IRC operator (acts as a server admin)")),
        ("330", ("`7of9", "`7of9", "is logged in as")),
        ("335", ("`7of9", "is a bot")),
        ("318", ("`7of9", "End of /WHOIS list")),
    ]
    (ask,) = commands(codec.receive_data(b"WHOIS stranger\r\n"))
    wire = codec.render(WhoisReply(mask="stranger", users=(), ref=ask.ref))
    assert b" 401 alice stranger :No such nick" in wire
    assert wire.endswith(b" 318 alice stranger :End of /WHOIS list\r\n")
    wire = replies(codec.receive_data(b"WHOIS st*\r\n"))  # a mask names nobody
    assert b" 401 alice st* " in wire and commands(codec.receive_data(b"")) == []
    assert b" 431 " in replies(codec.receive_data(b"WHOIS\r\n"))


# --- draft/multiline ------------------------------------------------------------------------


def multiline(lines: list[str], target: str = "#lobby", ref: str = "m1") -> bytes:
    inner = "".join(f"@batch={ref} PRIVMSG {target} :{line}\r\n" for line in lines)
    return f"BATCH +{ref} draft/multiline {target}\r\n{inner}BATCH -{ref}\r\n".encode()


def test_a_multiline_batch_is_one_message_and_concat_joins_without_a_newline() -> None:
    codec = registered("batch draft/multiline")
    wire = (
        b"@label=x BATCH +b1 draft/multiline #lobby\r\n"
        b"@batch=b1 PRIVMSG #lobby :first line\r\n"
        b"@batch=b1 PRIVMSG #lobby :\r\n"
        b"@batch=b1 PRIVMSG #lobby :second \r\n"
        b"@batch=b1;draft/multiline-concat PRIVMSG #lobby :half\r\n"
        b"BATCH -b1\r\n"
    )
    (say,) = commands(codec.receive_data(wire))
    assert isinstance(say, Say) and (say.room, say.body) == ("lobby", "first line\n\nsecond half")
    (dm,) = commands(codec.receive_data(multiline(["a", "b"], target="bob")))
    assert isinstance(dm, Dm) and (dm.to, dm.body) == ("bob", "a\nb")


def test_multiline_limits_refuse_the_whole_batch_at_their_edge() -> None:
    def codec() -> IrcServerCodec:
        c = IrcServerCodec(multiline_max_lines=3, multiline_max_bytes=11)
        c.receive_data(b"CAP LS 302\r\nCAP REQ :batch draft/multiline\r\n")
        (hello,) = commands(c.receive_data(b"NICK alice\r\nUSER a 0 * :A\r\nCAP END\r\n"))
        c.render(replace(WELCOME, ref=hello.ref))
        return c

    assert b"draft/multiline=max-bytes=11,max-lines=3" in replies(
        IrcServerCodec(multiline_max_lines=3, multiline_max_bytes=11).receive_data(
            b"CAP LS 302\r\n"
        )
    )
    (at_edge,) = commands(
        codec().receive_data(multiline(["abc", "def", "g"]))
    )  # 3 lines, 9+2 bytes
    assert isinstance(at_edge, Say) and at_edge.body == "abc\ndef\ng"
    items = codec().receive_data(multiline(["a", "b", "c", "d"]))
    assert commands(items) == [] and b"FAIL BATCH MULTILINE_MAX_LINES 3 :" in replies(items)
    items = codec().receive_data(multiline(["abcdef", "ghijk"]))  # 6 + 1 + 5 = 12 bytes
    assert commands(items) == [] and b"FAIL BATCH MULTILINE_MAX_BYTES 11 :" in replies(items)
    c = codec()
    items = c.receive_data(
        b"BATCH +z draft/multiline #lobby\r\n@batch=z PRIVMSG #other :x\r\nBATCH -z\r\n"
    )
    assert commands(items) == [] and b"FAIL BATCH MULTILINE_INVALID_TARGET" in replies(items)
    (after,) = commands(c.receive_data(multiline(["fine"])))  # the next batch is its own
    assert isinstance(after, Say) and after.body == "fine"
    junk = c.receive_data(b"BATCH +q netsplit\r\n@batch=nope PRIVMSG #lobby :x\r\nBATCH -q\r\n")
    assert commands(junk) == []
    assert replies(junk).count(b"FAIL BATCH") == 3
    empty = c.receive_data(multiline([" "]))
    assert b"FAIL BATCH MULTILINE_INVALID" in replies(empty) and commands(empty) == []


def test_a_body_of_several_lines_is_one_multiline_batch_where_negotiated() -> None:
    msg = Message(id=42, ts_ms=0, sender="bob", room="lobby", body="one\n\n" + "é" * 300)
    wire = registered("message-tags draft/multiline").render(msg)
    lines = [parse_message(line.decode()) for line in wire.split(b"\r\n")[:-1]]
    shape = [(m.command, m.params[-1][:6], dict(m.tags)) for m in lines if m is not None]
    assert shape == [
        ("BATCH", "#lobby", {"msgid": "42"}),
        ("PRIVMSG", "one", {"batch": "ml42"}),
        ("PRIVMSG", "", {"batch": "ml42"}),
        ("PRIVMSG", "é" * 6, {"batch": "ml42"}),
        ("PRIVMSG", "é" * 6, {"batch": "ml42", "draft/multiline-concat": ""}),
        ("BATCH", "-ml42", {}),
    ]
    assert (
        shape[0][1] == "#lobby"
        and lines[0] is not None
        and lines[0].params[:2]
        == (
            "+ml42",
            "draft/multiline",
        )
    )
    plain = registered("message-tags").render(msg)  # without: one PRIVMSG per piece
    assert plain.count(b"PRIVMSG") == 3 and b"BATCH" not in plain  # not the blank line
    assert plain.count(b"msgid=42") == 1  # on the first line only (ircmsg)


def test_multiline_concat_points_are_relayed_as_the_lines_came() -> None:
    """ircmsg: lines joined with draft/multiline-concat are relayed so, and a fallback
    client gets each line (blank ones left out), the msgid on the first only."""
    client = registered("message-tags draft/multiline batch")
    client.receive_data(
        b"BATCH +b draft/multiline #lobby\r\n@batch=b PRIVMSG #lobby :\r\n"
        b"@batch=b PRIVMSG #lobby :#how is \r\n"
        b"@batch=b;draft/multiline-concat PRIVMSG #lobby :everyone?\r\n"
    )
    (say,) = commands(client.receive_data(b"BATCH -b\r\n"))
    assert isinstance(say, Say) and (say.body, say.concat) == ("\n#how is everyone?", (9,))
    msg = Message(id=7, ts_ms=0, sender="bob", room="lobby", body=say.body, concat=say.concat)
    wire = registered("message-tags draft/multiline").render(msg)
    lines = [parse_message(line.decode()) for line in wire.split(b"\r\n")[:-1]]
    shape = [(m.params[-1], "draft/multiline-concat" in m.tags) for m in lines if m]
    assert shape[1:-1] == [("", False), ("#how is ", False), ("everyone?", True)]
    plain = registered("message-tags").render(msg)
    assert plain == (
        b"@msgid=7 :bob!bob@chinwag PRIVMSG #lobby :#how is \r\n"
        b":bob!bob@chinwag PRIVMSG #lobby everyone?\r\n"
    )


# --- shared fan-out rendering (one rendering per set of tag capabilities) ---------------


def test_fan_out_lines_are_shared_by_clients_with_the_same_tag_caps_and_read_the_same() -> None:
    events: list[Outgoing] = [
        Message(id=7, ts_ms=1_700_000_000_123, sender="bob", room="lobby", body="one\ntwo"),
        Message(id=8, ts_ms=0, sender="bob", to="carl", body="a dm"),
        Presence(room="lobby", nick="bob", event="join"),
        TypingNotice(sender="bob", room="lobby"),
        Edited(id=9, ts_ms=0, target=7, sender="bob", room="lobby", body="fixed"),
        Deleted(id=10, ts_ms=0, target=7, by="bob", room="lobby"),
    ]
    for caps in ("", "server-time", "message-tags", "server-time message-tags batch"):
        first, second = registered(caps), registered(caps + " echo-message")
        renderer = first.shared(events)
        assert renderer is not None and renderer is second.shared(events)
        for event in events:  # what a client alone would have been sent, byte for byte
            assert renderer(event) == registered(caps).render(event)
    assert registered("server-time").shared(events) is not registered("message-tags").shared(events)


def test_a_shared_frame_counts_as_sent_for_the_cursor_ping() -> None:
    codec = registered()
    message = Message(id=41, ts_ms=0, sender="bob", room="lobby", body="hi")
    assert codec.shared([message]) is not None
    wire = codec.render(CaughtUp(missed=1, rooms={"lobby": 1}, dms={}, truncated=False))
    assert wire.endswith(b"PING seen-41\r\n")


def test_lines_that_read_differently_for_this_client_are_not_shared() -> None:
    codec = registered("batch")
    (say,) = commands(codec.receive_data(b"PRIVMSG #lobby :mine\r\n"))
    assert isinstance(say, Say)
    own = Message(id=5, ts_ms=0, sender="alice", room="lobby", body="mine", cid=say.cid)
    not_shared: list[Outgoing] = [
        own,  # the hub's copy of what this connection sent: not shown again
        Message(id=6, ts_ms=0, sender="bob", room="lobby", body="old", replay=True),
        Presence(room="lobby", nick="alice", event="join"),  # one's own
        TypingNotice(sender="bob", to="alice"),
        Edited(id=9, ts_ms=0, target=4, sender="bob", to="alice", body="dm edit"),
        Ok(ref="i1"),
    ]
    plain = Message(id=7, ts_ms=0, sender="bob", room="lobby", body="hi")
    for event in not_shared:
        assert codec.shared([plain, event]) is None, event
    assert codec.render(own) == b""
    assert registered().shared([plain]) is not None
    welcome_pending = IrcServerCodec()
    welcome_pending.receive_data(b"NICK bob\r\nUSER bob 0 * :Bob\r\n")
    assert welcome_pending.shared([plain]) is None  # lines before 001 are held, not shared


def test_a_change_in_a_room_joined_at_login_tells_its_whole_state() -> None:
    codec = registered()  # #lobby's room_info was never asked for
    changed = RoomInfo(room="lobby", topic="hi", private=False, announce=True, by="olga")
    assert codec.render(changed) == (
        b":olga!olga@chinwag TOPIC #lobby hi\r\n:olga!olga@chinwag MODE #lobby +m\r\n"
    )
    again = RoomInfo(room="lobby", topic="hi", private=False, announce=False, by="olga")
    assert codec.render(again) == b":olga!olga@chinwag MODE #lobby -m\r\n"  # known now


# --- irccaps: MONITOR, +B, SETNAME, REGISTER --------------------------------------------


def test_monitor_subcommands_are_monitor_commands_and_their_answers_numerics() -> None:
    codec = registered()
    (add,) = commands(codec.receive_data(b"MONITOR + bob,`7of9\r\n"))
    assert isinstance(add, Monitor) and add.add == ("bob", "7of9")
    wire = codec.render(MonitorReply(online=("7of9",), offline=("bob",), ref=add.ref))
    assert wire == b":chinwag 730 alice `7of9!`7of9@chinwag\r\n:chinwag 731 alice bob\r\n"
    (listed,) = commands(codec.receive_data(b"MONITOR L\r\n"))
    wire = codec.render(MonitorReply(online=("7of9",), offline=("bob",), ref=listed.ref))
    assert wire == b":chinwag 732 alice `7of9,bob\r\n:chinwag 733 alice :End of MONITOR list\r\n"
    (clear,) = commands(codec.receive_data(b"MONITOR c\r\n"))
    assert isinstance(clear, Monitor) and clear.clear
    assert codec.render(MonitorReply(ref=clear.ref)) == b""
    assert b" 461 " in replies(codec.receive_data(b"MONITOR +\r\nMONITOR X\r\n"))
    assert codec.render(MonitorNotice(nick="bob", online=False)) == b":chinwag 731 alice bob\r\n"


def test_monitor_lines_are_cut_to_fit_irc_s_limit() -> None:
    codec = registered()
    nicks = tuple(f"nick{i:03d}" for i in range(100))
    (cmd,) = commands(codec.receive_data(b"MONITOR S\r\n"))
    lines = codec.render(MonitorReply(offline=nicks, ref=cmd.ref)).split(b"\r\n")[:-1]
    assert len(lines) > 1 and all(len(line) + 2 <= 512 for line in lines)
    assert [n for line in lines for n in line.rsplit(b" ", 1)[1].decode().split(",")] == list(nicks)


def test_only_one_s_own_b_mode_is_a_bot_command() -> None:
    codec = registered()
    assert b" 502 " in replies(codec.receive_data(b"MODE bob +B\r\n"))
    assert b" 501 " in replies(codec.receive_data(b"MODE alice +x\r\n"))
    (bot,) = commands(codec.receive_data(b"MODE alice +B\r\n"))
    assert isinstance(bot, SetBot) and bot.on
    assert codec.render(Ok(ref=bot.ref)) == b":alice!alice@chinwag MODE alice +B\r\n"
    assert b" 221 alice +B" in replies(codec.receive_data(b"MODE alice\r\n"))


def test_setname_and_register_map_onto_their_commands() -> None:
    codec = registered("setname")
    (name,) = commands(codec.receive_data(b"SETNAME :Alice Example\r\n"))
    assert isinstance(name, SetName) and name.real_name == "Alice Example"
    assert codec.render(Ok(ref=name.ref)) == b":alice!alice@chinwag SETNAME :Alice Example\r\n"
    assert b" 461 " in replies(codec.receive_data(b"SETNAME\r\n"))
    account = b"FAIL REGISTER ALREADY_AUTHENTICATED alice"  # welcomed as an account
    assert account in replies(codec.receive_data(b"REGISTER * * hunter22hunter\r\n"))
    assert b"FAIL REGISTER NEED_MORE_PARAMS" in replies(codec.receive_data(b"REGISTER *\r\n"))
    guest = IrcServerCodec()
    (hello,) = commands(guest.receive_data(b"NICK bob\r\nUSER bob 0 * :Bob\r\n"))
    guest.render(replace(WELCOME, nick="bob", account=False, ref=hello.ref))
    (reg,) = commands(guest.receive_data(b"REGISTER bob * hunter22hunter\r\n"))
    assert isinstance(reg, Register) and reg.password == "hunter22hunter"
    wire = guest.render(Ok(ref=reg.ref))
    assert wire.startswith(b":chinwag REGISTER SUCCESS bob :Account created\r\n:chinwag 900 bob")


def test_keys_and_limits_are_room_requests_and_join_keys_go_in_order() -> None:
    """ircmodes: ``+k``/``-k``/``+l``/``-l`` in one MODE line, a limit that is no whole
    number above 0 answered at once (``696``), and ``JOIN #a,#b,#c k1,,k3``."""
    codec = registered()
    items = codec.receive_data(
        b"MODE #den +kl-k+l b33r 5 * 07\r\nMODE #den -l\r\nMODE #den +l :x1\r\nMODE #den +k\r\n"
    )
    assert [replace(c, ref=None) for c in commands(items)] == [
        RoomSet(room="den", key="b33r"),
        RoomSet(room="den", limit=5),
        RoomSet(room="den", key=""),
        RoomSet(room="den", limit=7),
        RoomSet(room="den", limit=0),
    ]
    lines = replies(items).split(b"\r\n")[:-1]
    assert lines[0].startswith(b":chinwag 696 alice #den l x1 :A limit is a whole number")
    assert lines[1].startswith(b":chinwag 461 alice MODE :Not enough parameters")
    joins = commands(codec.receive_data(b"JOIN #a,#b,#c k1,,k3\r\nJOIN #d\r\n"))
    assert [(j.room, j.key) for j in joins if isinstance(j, Join)] == [
        ("a", "k1"), ("b", None), ("c", "k3"), ("d", None)
    ]  # fmt: skip
