"""JSON Lines rendering of server events: the exact bytes protocol v1 clients get.

The expected lines were produced by the server before it had typed events (its
wire dicts, encoded): a client must not see a single byte change, key order
included.
"""

from __future__ import annotations

import pytest

from chinwag.errors import ChatError, RateLimited, SessionEnded, UnsupportedProto
from chinwag.protocol.events import (
    AccountNotice,
    Ack,
    AwayNotice,
    BanRow,
    BansReply,
    BlocksReply,
    Bye,
    CaughtUp,
    Deleted,
    Edited,
    Error,
    HistoryReply,
    Message,
    MonitorNotice,
    MonitorReply,
    Ok,
    Outgoing,
    Ping,
    Pong,
    Presence,
    Reacted,
    ReadMarker,
    RealNameNotice,
    Receipt,
    ReceiptState,
    Results,
    RoomInfo,
    RoomRow,
    RoomsReply,
    SettingsReply,
    StatsReply,
    TypingNotice,
    WallopsNotice,
    Welcome,
    WhoisReply,
    WhoMember,
    WhoReply,
    WhoWasEntry,
    WhoWasReply,
)
from chinwag.protocol.jsonlines import iso_ts, render

TS = 1795928400123  # 2026-11-29T05:00:00.123Z
BODY = "hi \u2028 \u00e9\n"  # a line separator, a non-ASCII letter and a newline

ROOM_MSG = Message(id=42, ts_ms=TS, sender="Ann", room="lobby", body=BODY)
OWN_ROOM_MSG = Message(id=42, ts_ms=TS, sender="Ann", room="lobby", body=BODY, cid="c1")

GOLDEN: list[tuple[str, Outgoing, bytes]] = [
    # -- protocol §8 (version 1.1): new fields appear only when set --
    (
        "welcome_features",
        Welcome(
            proto=1,
            nick="Ann",
            account=True,
            server_name="box",
            server_version="9.9",
            motd="",
            rooms=("lobby",),
            features=("edit", "react"),
        ),
        b'{"type":"welcome","proto":1,"nick":"Ann","account":true,'
        b'"server":{"name":"box","version":"9.9"},"motd":"","rooms":["lobby"],'
        b'"features":["edit","react"]}\n',
    ),
    (
        "caught_up_mentions",
        CaughtUp(missed=2, rooms={"lobby": 2}, dms={}, truncated=False, mentions=1),
        b'{"type":"caught_up","missed":2,"rooms":{"lobby":2},"dms":{},"truncated":false,'
        b'"mentions":1}\n',
    ),
    (
        "message_reply_mentions",
        Message(
            id=44,
            ts_ms=TS,
            sender="Ann",
            room="lobby",
            body="@bob yes",
            reply_to=42,
            mentions=("bob",),
        ),
        b'{"type":"message","id":44,"ts":"2026-11-29T05:00:00.123Z","from":"Ann","room":"lobby",'
        b'"body":"@bob yes","reply_to":42,"mentions":["bob"]}\n',
    ),
    (
        "history_message_edited_reacted",
        Message(
            id=42,
            ts_ms=TS,
            sender="Ann",
            room="lobby",
            body="new",
            edited_ms=TS + 1000,
            reactions=(("\U0001f44d", ("bob", "cy")),),
        ),
        b'{"type":"message","id":42,"ts":"2026-11-29T05:00:00.123Z","from":"Ann","room":"lobby",'
        b'"body":"new","edited":"2026-11-29T05:00:01.123Z",'
        b'"reactions":[{"emoji":"\xf0\x9f\x91\x8d","nicks":["bob","cy"]}]}\n',
    ),
    (
        "history_message_deleted",
        Message(id=42, ts_ms=TS, sender="Ann", to="bob", body="", deleted=True),
        b'{"type":"message","id":42,"ts":"2026-11-29T05:00:00.123Z","from":"Ann","to":"bob",'
        b'"deleted":true}\n',
    ),
    (
        "edited",
        Edited(id=57, ts_ms=TS, target=42, sender="Ann", room="lobby", body="fixed"),
        b'{"type":"edited","id":57,"target":42,"from":"Ann","room":"lobby","body":"fixed",'
        b'"ts":"2026-11-29T05:00:00.123Z"}\n',
    ),
    (
        "edited_dm_mentions_replay",
        Edited(
            id=57,
            ts_ms=TS,
            target=42,
            sender="Ann",
            to="bob",
            body="@bob",
            mentions=("bob",),
            replay=True,
        ),
        b'{"type":"edited","id":57,"target":42,"from":"Ann","to":"bob","body":"@bob",'
        b'"mentions":["bob"],"ts":"2026-11-29T05:00:00.123Z","replay":true}\n',
    ),
    (
        "deleted",
        Deleted(id=58, ts_ms=TS, target=42, by="Ann", room="lobby"),
        b'{"type":"deleted","id":58,"target":42,"by":"Ann","room":"lobby",'
        b'"ts":"2026-11-29T05:00:00.123Z"}\n',
    ),
    (
        "results",
        Results(
            q="hi",
            messages=(Message(id=43, ts_ms=TS, sender="Ann", to="bob", body="hi"),),
            more=True,
            ref="s",
        ),
        b'{"type":"results","q":"hi","messages":[{"type":"message","id":43,'
        b'"ts":"2026-11-29T05:00:00.123Z","from":"Ann","to":"bob","body":"hi"}],"more":true,'
        b'"ref":"s"}\n',
    ),
    (
        "read_room",
        ReadMarker(room="lobby", upto=42),
        b'{"type":"read","room":"lobby","upto":42}\n',
    ),
    (
        "receipt",
        Receipt(with_="bob", upto=42, state="delivered"),
        b'{"type":"receipt","with":"bob","upto":42,"state":"delivered"}\n',
    ),
    (
        "read_dm",
        ReadMarker(with_="bob", upto=43),
        b'{"type":"read","with":"bob","upto":43}\n',
    ),
    (
        "caught_up_unread",
        CaughtUp(
            missed=3,
            rooms={"lobby": 2},
            dms={"bob": 1},
            truncated=False,
            mentions=0,
            unread={"lobby": 2, "@bob": 1},
        ),
        b'{"type":"caught_up","missed":3,"rooms":{"lobby":2},"dms":{"bob":1},"truncated":false,'
        b'"mentions":0,"unread":{"lobby":2,"@bob":1}}\n',
    ),
    (
        "reacted_off_dm",
        Reacted(id=59, ts_ms=TS, target=42, sender="bob", to="Ann", emoji="\U0001f44d", on=False),
        b'{"type":"reacted","id":59,"target":42,"from":"bob","to":"Ann",'
        b'"emoji":"\xf0\x9f\x91\x8d","on":false,"ts":"2026-11-29T05:00:00.123Z"}\n',
    ),
    (
        "message",
        ROOM_MSG,
        b'{"type":"message","id":42,"ts":"2026-11-29T05:00:00.123Z","from":"Ann","room":"lobby",'
        b'"body":"hi \\u2028 \xc3\xa9\\n"}\n',
    ),
    (
        "message_own",
        OWN_ROOM_MSG,
        b'{"type":"message","id":42,"ts":"2026-11-29T05:00:00.123Z","from":"Ann","room":"lobby",'
        b'"body":"hi \\u2028 \xc3\xa9\\n","cid":"c1"}\n',
    ),
    (
        "message_replay_own",
        Message(id=42, ts_ms=TS, sender="Ann", room="lobby", body=BODY, cid="c1", replay=True),
        b'{"type":"message","id":42,"ts":"2026-11-29T05:00:00.123Z","from":"Ann","room":"lobby",'
        b'"body":"hi \\u2028 \xc3\xa9\\n","cid":"c1","replay":true}\n',
    ),
    (
        "dm_replay",
        Message(id=43, ts_ms=TS + 5, sender="Ann", to="bob", body="psst", replay=True),
        b'{"type":"message","id":43,"ts":"2026-11-29T05:00:00.128Z","from":"Ann","to":"bob",'
        b'"body":"psst","replay":true}\n',
    ),
    (
        "dm",
        Message(id=43, ts_ms=TS + 5, sender="Ann", to="bob", body="psst"),
        b'{"type":"message","id":43,"ts":"2026-11-29T05:00:00.128Z","from":"Ann","to":"bob",'
        b'"body":"psst"}\n',
    ),
    (
        "welcome_ref",
        Welcome(
            proto=1,
            nick="Ann",
            account=True,
            server_name="box",
            server_version="9.9",
            motd="hello",
            rooms=("dev", "lobby"),
            ref="r1",
        ),
        b'{"type":"welcome","proto":1,"nick":"Ann","account":true,'
        b'"server":{"name":"box","version":"9.9"},"motd":"hello","rooms":["dev","lobby"],'
        b'"ref":"r1"}\n',
    ),
    (
        "welcome",
        Welcome(
            proto=1,
            nick="Ann",
            account=False,
            server_name="box",
            server_version="9.9",
            motd="hello",
            rooms=("lobby",),
        ),
        b'{"type":"welcome","proto":1,"nick":"Ann","account":false,'
        b'"server":{"name":"box","version":"9.9"},"motd":"hello","rooms":["lobby"]}\n',
    ),
    (
        "caught_up_nothing",
        CaughtUp(missed=0, rooms={}, dms={}, truncated=False),
        b'{"type":"caught_up","missed":0,"rooms":{},"dms":{},"truncated":false}\n',
    ),
    (
        "caught_up",
        CaughtUp(missed=5, rooms={"lobby": 3, "dev": 1}, dms={"bob": 1}, truncated=True),
        b'{"type":"caught_up","missed":5,"rooms":{"lobby":3,"dev":1},"dms":{"bob":1},'
        b'"truncated":true}\n',
    ),
    (
        "ack",
        Ack(id=42, ts_ms=TS),
        b'{"type":"ack","id":42,"ts":"2026-11-29T05:00:00.123Z"}\n',
    ),
    (
        "ack_cid_ref",
        Ack(id=42, ts_ms=TS, cid="c1", ref="r2"),
        b'{"type":"ack","id":42,"ts":"2026-11-29T05:00:00.123Z","cid":"c1","ref":"r2"}\n',
    ),
    (
        "presence",
        Presence(room="lobby", nick="Ann", event="join"),
        b'{"type":"presence","room":"lobby","nick":"Ann","event":"join"}\n',
    ),
    (
        "typing_room",
        TypingNotice(sender="Ann", room="lobby"),
        b'{"type":"typing","from":"Ann","room":"lobby"}\n',
    ),
    (
        "typing_to",
        TypingNotice(sender="Ann", to="bob"),
        b'{"type":"typing","from":"Ann","to":"bob"}\n',
    ),
    ("ok", Ok(), b'{"type":"ok"}\n'),
    ("ok_ref", Ok(ref="r3"), b'{"type":"ok","ref":"r3"}\n'),
    ("pong", Pong(), b'{"type":"pong"}\n'),
    ("pong_ref", Pong(ref="p"), b'{"type":"pong","ref":"p"}\n'),
    ("ping", Ping(), b'{"type":"ping"}\n'),
    ("bye", Bye(), b'{"type":"bye"}\n'),
    ("bye_ref", Bye(ref="b"), b'{"type":"bye","ref":"b"}\n'),
    # -- moderation (issue 16) --
    ("bye_banned", Bye(reason="banned"), b'{"type":"bye","reason":"banned"}\n'),
    (
        "presence_ban",
        Presence(room="games", nick="bob", event="ban", by="Ann", reason="spam", until_ms=TS),
        b'{"type":"presence","room":"games","nick":"bob","event":"ban","by":"Ann",'
        b'"reason":"spam","until":"2026-11-29T05:00:00.123Z"}\n',
    ),
    (
        "presence_grant",
        Presence(room="games", nick="bob", event="grant", by="Ann", role="mod"),
        b'{"type":"presence","room":"games","nick":"bob","event":"grant","by":"Ann",'
        b'"reason":"","role":"mod"}\n',
    ),
    (
        "room_info_join",
        RoomInfo(room="games", topic="chess", private=True, announce=False, role="owner"),
        b'{"type":"room_info","room":"games","topic":"chess","private":true,"announce":false,'
        b'"by":null,"role":"owner"}\n',
    ),
    (
        "who",
        WhoReply(
            room="lobby",
            users=(
                WhoMember(nick="Ann", account=True),
                WhoMember(nick="bot1", account=True, bot=True),
                WhoMember(nick="zed", account=False),
            ),
            truncated=False,
            ref="w",
        ),
        b'{"type":"who","room":"lobby","users":[{"nick":"Ann","account":true},'
        b'{"nick":"bot1","account":true,"bot":true},{"nick":"zed","account":false}],'
        b'"truncated":false,"ref":"w"}\n',
    ),
    (
        "rooms",
        RoomsReply(
            rooms=(RoomRow(name="dev", online=0), RoomRow(name="lobby", online=2)),
            truncated=True,
        ),
        b'{"type":"rooms","rooms":[{"name":"dev","online":0},{"name":"lobby","online":2}],'
        b'"truncated":true}\n',
    ),
    (
        "history_room",
        HistoryReply(room="lobby", messages=(OWN_ROOM_MSG, ROOM_MSG), more=False, ref="h"),
        b'{"type":"history","room":"lobby","messages":[{"type":"message","id":42,'
        b'"ts":"2026-11-29T05:00:00.123Z","from":"Ann","room":"lobby",'
        b'"body":"hi \\u2028 \xc3\xa9\\n","cid":"c1"},{"type":"message","id":42,'
        b'"ts":"2026-11-29T05:00:00.123Z","from":"Ann","room":"lobby",'
        b'"body":"hi \\u2028 \xc3\xa9\\n"}],"more":false,"ref":"h"}\n',
    ),
    (
        "history_with",
        HistoryReply(with_="Bob", messages=(), more=True),
        b'{"type":"history","with":"Bob","messages":[],"more":true}\n',
    ),
    (
        "error_rate_limited",
        Error.of(RateLimited(1.5, "slow down: retry in 1.5 s"), "r"),
        b'{"type":"error","code":"rate_limited","message":"slow down: retry in 1.5 s",'
        b'"retry_after":1.5,"ref":"r"}\n',
    ),
    (
        "error_unsupported_proto",
        Error.of(UnsupportedProto("this server speaks protocol 1, not 2", supported=[1])),
        b'{"type":"error","code":"unsupported_proto",'
        b'"message":"this server speaks protocol 1, not 2","supported":[1]}\n',
    ),
    (
        "error_session_ended",
        Error.of(SessionEnded("bye now", reason="deleted")),
        b'{"type":"error","code":"session_ended","message":"bye now","reason":"deleted"}\n',
    ),
    (
        "error_server",
        Error.of(ChatError(), "x"),
        b'{"type":"error","code":"server_error",'
        b'"message":"the server could not do that; nothing was applied, retry","ref":"x"}\n',
    ),
    (
        "error_extra_fields",
        Error(
            code="rate_limited",
            message="too many connections from your address; close some and retry",
            extra={"retry_after": 10},
        ),
        b'{"type":"error","code":"rate_limited",'
        b'"message":"too many connections from your address; close some and retry",'
        b'"retry_after":10}\n',
    ),
    (
        "error_ref",
        Error(code="bad_frame", message="not JSON", ref="q"),
        b'{"type":"error","code":"bad_frame","message":"not JSON","ref":"q"}\n',
    ),
    (
        "blocks",
        BlocksReply(nicks=("bob", "Zoë"), ref="l"),
        b'{"type":"blocks","nicks":["bob","Zo\xc3\xab"],"ref":"l"}\n',
    ),
    # -- issue 15: the settings read back, stored receipts --
    (
        "settings",
        SettingsReply(receipts=True, ref="s"),
        b'{"type":"settings","receipts":true,"ref":"s"}\n',
    ),
    (
        "welcome_settings",
        Welcome(
            proto=1,
            nick="Ann",
            account=True,
            server_name="box",
            server_version="9.9",
            motd="",
            rooms=(),
            features=("receipts",),
            settings={"receipts": False},
        ),
        b'{"type":"welcome","proto":1,"nick":"Ann","account":true,'
        b'"server":{"name":"box","version":"9.9"},"motd":"","rooms":[],'
        b'"features":["receipts"],"settings":{"receipts":false}}\n',
    ),
    (
        "caught_up_receipts",
        CaughtUp(
            missed=0,
            rooms={},
            dms={},
            truncated=False,
            mentions=0,
            unread={},
            receipts={"@Bob": ReceiptState(delivered=42, read=40)},
        ),
        b'{"type":"caught_up","missed":0,"rooms":{},"dms":{},"truncated":false,'
        b'"mentions":0,"unread":{},"receipts":{"@Bob":{"delivered":42,"read":40}}}\n',
    ),
    (
        "history_with_receipts",
        HistoryReply(
            with_="Bob", messages=(), more=False, receipts=ReceiptState(delivered=7, read=0)
        ),
        b'{"type":"history","with":"Bob","messages":[],"more":false,'
        b'"receipts":{"delivered":7,"read":0}}\n',
    ),
    (
        "stats",
        StatsReply(online=3, here=2, rooms=2, nodes=2, invisible=1, operators=0, ref="s"),
        b'{"type":"stats","online":3,"here":2,"rooms":2,"nodes":2,"invisible":1,"operators":0,'
        b'"ref":"s"}\n',
    ),
    (
        "whowas",
        WhoWasReply(
            nick="Bob", entries=(WhoWasEntry(nick="bob", account=True, ts_ms=TS),), ref="w"
        ),
        b'{"type":"whowas","nick":"Bob","entries":[{"nick":"bob","account":true,'
        b'"ts":"2026-11-29T05:00:00.123Z"}],"ref":"w"}\n',
    ),
    # -- away (issue 19) --
    (
        "away",
        AwayNotice(nick="Ann", message="at lunch"),
        b'{"type":"away","nick":"Ann","message":"at lunch"}\n',
    ),
    ("away_back", AwayNotice(nick="Ann"), b'{"type":"away","nick":"Ann","message":null}\n'),
    (
        "ack_away",
        Ack(id=42, ts_ms=TS, ref="d", away="at lunch"),
        b'{"type":"ack","id":42,"ts":"2026-11-29T05:00:00.123Z","away":"at lunch","ref":"d"}\n',
    ),
    (
        "who_away",
        WhoReply(
            room="lobby", users=(WhoMember(nick="Ann", account=True, away="brb"),), truncated=False
        ),
        b'{"type":"who","room":"lobby","users":[{"nick":"Ann","account":true,"away":"brb"}],'
        b'"truncated":false}\n',
    ),
    # -- ban list, creation time, quit (issue 19, ircwho) --
    (
        "bans",
        BansReply(
            room="den",
            bans=(BanRow(nick="Bob", by="olga", ts_ms=TS, until_ms=TS + 1000, reason="spam"),),
            ref="b",
        ),
        b'{"type":"bans","room":"den","bans":[{"nick":"Bob","by":"olga",'
        b'"ts":"2026-11-29T05:00:00.123Z","until":"2026-11-29T05:00:01.123Z","reason":"spam"}],'
        b'"ref":"b"}\n',
    ),
    (
        "room_info_created",
        RoomInfo(room="den", topic="", private=False, announce=False, role="owner", created_ms=TS),
        b'{"type":"room_info","room":"den","topic":"","private":false,"announce":false,'
        b'"by":null,"role":"owner","created":"2026-11-29T05:00:00.123Z"}\n',
    ),
    (
        "room_info_ircroles",
        RoomInfo(
            room="den",
            topic="chess",
            private=False,
            announce=True,
            by="gus",
            topic_locked=False,
            secret=True,
            topic_by="gus",
            topic_ms=TS,
        ),
        b'{"type":"room_info","room":"den","topic":"chess","private":false,"announce":true,'
        b'"by":"gus","topic_locked":false,"secret":true,"topic_by":"gus",'
        b'"topic_at":"2026-11-29T05:00:00.123Z"}\n',
    ),
    (
        "presence_quit",
        Presence(room="den", nick="qux", event="leave", quit="qux out"),
        b'{"type":"presence","room":"den","nick":"qux","event":"leave","quit":"qux out"}\n',
    ),
    # -- operators, whois, wallops (issue 19, ircoper) --
    (
        "whois",
        WhoisReply(
            mask="a*",
            users=(
                WhoMember(nick="ann", account=True, oper=True),
                WhoMember(nick="al", account=False, user="u", real_name="Al B"),
            ),
            ref="w",
        ),
        b'{"type":"whois","mask":"a*","users":[{"nick":"ann","account":true,"oper":true},'
        b'{"nick":"al","account":false,"user":"u","real_name":"Al B"}],"truncated":false,'
        b'"ref":"w"}\n',
    ),
    (
        "wallops",
        WallopsNotice(sender="ann", text="restart at noon"),
        b'{"type":"wallops","from":"ann","text":"restart at noon"}\n',
    ),
    (
        "whowas_irc",
        WhoWasReply(
            nick="al",
            entries=(WhoWasEntry(nick="al", account=False, ts_ms=TS, user="u", real_name="Al"),),
        ),
        b'{"type":"whowas","nick":"al","entries":[{"nick":"al","account":false,'
        b'"ts":"2026-11-29T05:00:00.123Z","user":"u","real_name":"Al"}]}\n',
    ),
    (
        "invite_by_account",
        Presence(room="den", nick="bob", event="invite", by="ann", by_account=True),
        b'{"type":"presence","room":"den","nick":"bob","event":"invite","by":"ann",'
        b'"reason":"","by_account":true}\n',
    ),
    (  # irccaps
        "monitor",
        MonitorReply(online=("Ann",), offline=("bob",), ref="m"),
        b'{"type":"monitor","online":["Ann"],"offline":["bob"],"ref":"m"}\n',
    ),
    (
        "monitored",
        MonitorNotice(nick="Ann", online=False),
        b'{"type":"monitored","nick":"Ann","online":false}\n',
    ),
    (
        "setname",
        RealNameNotice(nick="Ann", real_name="Ann Example", monitor=True),
        b'{"type":"setname","nick":"Ann","real_name":"Ann Example"}\n',
    ),
    ("account", AccountNotice(nick="Ann"), b'{"type":"account","nick":"Ann"}\n'),
]


@pytest.mark.parametrize(
    ("event", "expected"), [(e, b) for _, e, b in GOLDEN], ids=[n for n, _, _ in GOLDEN]
)
def test_every_event_renders_to_the_bytes_clients_have_always_received(
    event: Outgoing, expected: bytes
) -> None:
    assert render(event) == expected


def test_every_server_event_type_has_a_golden_line() -> None:
    covered = {type(event) for _, event, _ in GOLDEN}
    assert covered == set(Outgoing.__args__)


@pytest.mark.parametrize(
    ("ts_ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (TS, "2026-11-29T05:00:00.123Z"),
        (TS + 877, "2026-11-29T05:00:01.000Z"),  # the cached second moves on
        (TS - 124, "2026-11-29T04:59:59.999Z"),  # and back
        (253402300799999, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_timestamps_are_utc_iso_8601_with_milliseconds(ts_ms: int, text: str) -> None:
    assert iso_ts(ts_ms) == text


def test_an_error_tells_what_the_chat_error_says_and_echoes_the_ref() -> None:
    event = Error.of(RateLimited(2.0), "r9")
    assert (event.code, event.message, dict(event.extra), event.ref) == (
        "rate_limited",
        "too many requests; wait and retry",
        {"retry_after": 2.0},
        "r9",
    )
