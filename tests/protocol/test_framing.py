"""LineBuffer: line splitting with a limit that counts the terminator and holds early."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chinwag.protocol.framing import LineBuffer, LineTooLong


def feed_all(buf: LineBuffer, chunks: list[bytes]) -> list[bytes]:
    lines: list[bytes] = []
    for chunk in chunks:
        lines += buf.feed(chunk)
    return lines


def test_splits_complete_lines_and_keeps_the_rest() -> None:
    buf = LineBuffer(100)
    assert buf.feed(b"one\ntwo\nthr") == [b"one", b"two"]
    assert buf.pending == 3
    assert buf.feed(b"ee\n") == [b"three"]
    assert buf.pending == 0


def test_strips_one_trailing_carriage_return_only() -> None:
    buf = LineBuffer(100)
    assert buf.feed(b"a\r\nb\r\r\nc\rd\n\r\n") == [b"a", b"b\r", b"c\rd", b""]


def test_carriage_return_split_from_its_newline() -> None:
    buf = LineBuffer(100)
    assert buf.feed(b"abc\r") == []
    assert buf.feed(b"\n") == [b"abc"]


def test_empty_lines_are_returned_as_empty_bytes() -> None:
    assert LineBuffer(10).feed(b"\n\nx\n") == [b"", b"", b"x"]


def test_no_data_no_lines() -> None:
    buf = LineBuffer(10)
    assert buf.feed(b"") == []
    assert buf.feed(b"abc") == []
    assert buf.feed(b"") == []


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LineBuffer(0)
    assert LineBuffer(7).limit == 7


@pytest.mark.parametrize("limit", [1, 2, 16, 65_536])
def test_line_of_exactly_the_limit_with_newline_is_accepted(limit: int) -> None:
    line = b"x" * (limit - 1)
    assert LineBuffer(limit).feed(line + b"\n") == [line]


@pytest.mark.parametrize("limit", [2, 16, 65_536])
def test_line_of_exactly_the_limit_with_crlf_is_accepted(limit: int) -> None:
    line = b"x" * (limit - 2)
    assert LineBuffer(limit).feed(line + b"\r\n") == [line]


@pytest.mark.parametrize("limit", [1, 16, 65_536])
def test_one_byte_over_the_limit_with_newline_is_refused(limit: int) -> None:
    with pytest.raises(LineTooLong):
        LineBuffer(limit).feed(b"x" * limit + b"\n")


@pytest.mark.parametrize("limit", [2, 16, 65_536])
def test_one_byte_over_the_limit_with_crlf_is_refused(limit: int) -> None:
    with pytest.raises(LineTooLong):
        LineBuffer(limit).feed(b"x" * (limit - 1) + b"\r\n")


def test_limit_counts_the_whole_line_at_65536() -> None:
    """The contract's numbers: 65,535 + LF and 65,534 + CRLF fit in 65,536 bytes."""
    buf = LineBuffer(65_536)
    assert buf.feed(b"a" * 65_535 + b"\n" + b"b" * 65_534 + b"\r\n") == [
        b"a" * 65_535,
        b"b" * 65_534,
    ]


def test_overlong_line_is_refused_before_its_newline_arrives() -> None:
    buf = LineBuffer(16)
    assert buf.feed(b"x" * 15) == []  # a newline could still make it a legal line
    with pytest.raises(LineTooLong):
        buf.feed(b"x")  # 16 bytes and no newline: it can only end up too long


def test_overlong_line_bytewise_is_refused_at_the_first_impossible_byte() -> None:
    buf = LineBuffer(8)
    for _ in range(7):
        assert buf.feed(b"y") == []
    with pytest.raises(LineTooLong):
        buf.feed(b"y")


def test_buffer_never_holds_more_than_the_limit() -> None:
    buf = LineBuffer(10)
    buf.feed(b"123456789")
    assert buf.pending == 9
    with pytest.raises(LineTooLong):
        buf.feed(b"x" * 1_000_000)
    assert buf.pending == 0


def test_lines_before_the_overlong_one_are_handed_over() -> None:
    buf = LineBuffer(8)
    with pytest.raises(LineTooLong) as info:
        buf.feed(b"ok\nfine\r\n" + b"z" * 20 + b"\nafter\n")
    assert info.value.lines == [b"ok", b"fine"]


def test_stays_broken_after_an_overlong_line() -> None:
    buf = LineBuffer(8)
    with pytest.raises(LineTooLong):
        buf.feed(b"z" * 9)
    for tail in [b"\n", b"ok\n", b"", b"more\nlines\n"]:
        with pytest.raises(LineTooLong) as info:
            buf.feed(tail)
        assert info.value.lines == []


def test_limit_applies_to_each_line_of_a_chunk() -> None:
    buf = LineBuffer(4)
    assert buf.feed(b"abc\nde\r\nfgh\n") == [b"abc", b"de", b"fgh"]
    with pytest.raises(LineTooLong) as info:
        buf.feed(b"ijk\nlmno\n")
    assert info.value.lines == [b"ijk"]


def test_limit_counts_bytes_left_over_from_earlier_chunks() -> None:
    buf = LineBuffer(6)
    assert buf.feed(b"a\nbcd") == [b"a"]
    assert buf.feed(b"e") == []  # "bcde" pending: 4 bytes
    assert buf.feed(b"f\n") == [b"bcdef"]  # 6 bytes with the newline
    assert buf.feed(b"ghi") == []
    with pytest.raises(LineTooLong):
        buf.feed(b"jkl\n")  # 7 bytes


def test_feeding_a_long_line_bytewise_is_linear() -> None:
    """Rescanning from the start on every byte would take minutes here."""
    size = 400_000
    buf = LineBuffer(size + 1)
    started = time.perf_counter()
    for _ in range(size):
        buf.feed(b"x")
    assert buf.feed(b"\n") == [b"x" * size]
    assert time.perf_counter() - started < 30


def test_many_short_lines_in_one_chunk() -> None:
    data = b"ab\n" * 200_000
    started = time.perf_counter()
    assert LineBuffer(3).feed(data) == [b"ab"] * 200_000
    assert time.perf_counter() - started < 30


lines_strategy = st.lists(
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
    max_size=20,
)


@given(lines=lines_strategy, crlf=st.booleans(), data=st.data())
def test_segmentation_does_not_change_the_lines(
    lines: list[bytes], crlf: bool, data: st.DataObject
) -> None:
    terminator = b"\r\n" if crlf else b"\n"
    wire = b"".join(line + terminator for line in lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    # Exactly one "\r" before the "\n" is stripped: with CRLF that is the one we
    # added, with LF it is the line's own trailing "\r", if any.
    expected = lines if crlf else [line.removesuffix(b"\r") for line in lines]
    assert feed_all(LineBuffer(64), chunks) == expected
    assert feed_all(LineBuffer(64), [bytes([b]) for b in wire]) == expected


@given(chunks=st.lists(st.binary(max_size=50), max_size=20), limit=st.integers(1, 40))
def test_arbitrary_input_yields_bounded_lines_or_line_too_long(
    chunks: list[bytes], limit: int
) -> None:
    buf = LineBuffer(limit)
    for chunk in chunks:
        try:
            lines = buf.feed(chunk)
        except LineTooLong as exc:
            lines = exc.lines
            assert all(len(line) < limit for line in lines)
            with pytest.raises(LineTooLong):
                buf.feed(b"\n")
            return
        assert all(len(line) < limit and b"\n" not in line for line in lines)
        assert buf.pending < limit
