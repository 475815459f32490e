"""Outbound frames: each codec renders a fanned-out event once, and gets its own bytes."""

from __future__ import annotations

import re
from pathlib import Path

from chinwag.core.sessions import Frame
from chinwag.protocol.events import Message, Outgoing
from chinwag.protocol.jsonlines import render

CORE = Path(__file__).parents[2] / "src" / "chinwag" / "core"
TS = 1795928400123


class Counting:
    """A renderer that counts its calls: JSON lines, or a one-line text form."""

    def __init__(self, text: bool = False) -> None:
        self.calls = 0
        self.text = text

    def __call__(self, event: Outgoing) -> bytes:
        self.calls += 1
        if self.text:
            assert isinstance(event, Message)
            return f"<{event.sender}> {event.body}\r\n".encode()
        return render(event)


def msg(n: int, body: str = "hi") -> Message:
    return Message(id=n, ts_ms=TS, sender="ann", room="lobby", body=body)


def test_two_codecs_in_one_room_each_get_their_own_bytes_rendered_once() -> None:
    frame = Frame(msg(1))
    json_lines, text = Counting(), Counting(text=True)
    # 500 recipients, alternating codecs, as in a room with JSON and IRC members.
    got = [frame.render(json_lines if i % 2 else text) for i in range(500)]
    assert set(got[1::2]) == {
        b'{"type":"message","id":1,"ts":"2026-11-29T05:00:00.123Z","from":"ann",'
        b'"room":"lobby","body":"hi"}\n'
    }
    assert set(got[0::2]) == {b"<ann> hi\r\n"}
    assert (json_lines.calls, text.calls) == (1, 1)


def test_the_first_codec_is_found_by_identity_without_a_call() -> None:
    frame = Frame(msg(1))
    json_lines = Counting()
    wire = frame.render(json_lines)
    # The outlet's fast path: the frame names its renderer and holds the bytes.
    assert frame.renderer is json_lines
    assert frame.wire is wire


def test_a_combined_frame_renders_each_part_once_per_codec_and_joins_them() -> None:
    parts = (Frame(msg(1, "one")), Frame(msg(2, "two")))
    combined = Frame(None, parts)
    mine = Frame(None, (Frame(msg(1, "one")), parts[1]))  # another member's view
    json_lines, text = Counting(), Counting(text=True)
    assert combined.render(text) == b"<ann> one\r\n<ann> two\r\n"
    assert combined.render(json_lines) == render(msg(1, "one")) + render(msg(2, "two"))
    assert mine.render(json_lines) == render(msg(1, "one")) + render(msg(2, "two"))
    assert mine.render(text) == b"<ann> one\r\n<ann> two\r\n"
    # Part two is shared: both views reuse its bytes; part one exists twice.
    assert (json_lines.calls, text.calls) == (3, 3)


def test_core_builds_no_wire_dicts() -> None:
    """Only codecs write wire formats: no JSON "type" key anywhere in core/."""
    offenders = [
        f"{path.name}:{n}"
        for path in sorted(CORE.glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"""["']type["']\s*:""", line)
    ]
    assert offenders == []
