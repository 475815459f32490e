"""Splitting a byte stream into lines, with a length limit that holds before the newline.

Protocol v1 §1: a frame is one line terminated by ``\\n`` (``\\r\\n`` is accepted too),
and a client frame is at most ``limit`` bytes *including* its terminator. A peer
that sends a longer line is refused as soon as that is certain — without waiting
for a newline that may never come — so one connection never buffers more than
``limit`` bytes of an unfinished line. The same class frames both directions: the
server with the 64 KiB client limit, clients with the 16 MiB server limit.
"""

from __future__ import annotations

from typing import NoReturn

__all__ = ["LineBuffer", "LineTooLong"]


class LineTooLong(Exception):
    """A line is longer than the limit; the stream cannot be framed any further.

    Args:
        message: human-readable description of the overlong line.
        lines: the complete lines that preceded the overlong one in the data that
            was being fed, so that no well-formed frame is lost because of how the
            stream happened to be segmented.
    """

    def __init__(self, message: str, lines: list[bytes] | None = None) -> None:
        super().__init__(message)
        self.lines: list[bytes] = lines if lines is not None else []


class LineBuffer:
    """Incremental line splitter with a hard per-line limit.

    Each call to :meth:`feed` scans only bytes it has not scanned before, so
    feeding a long line one byte at a time costs O(n), not O(n²).

    Args:
        limit: the largest accepted line in bytes, counting the terminating
            ``\\n`` (and a preceding ``\\r``, if any). With ``limit=65536`` a line
            of 65,535 bytes + ``\\n`` or 65,534 bytes + ``\\r\\n`` is accepted, one
            more byte is not.

    Raises:
        ValueError: if ``limit`` is less than 1.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self._limit = limit
        self._buf = bytearray()
        # How much of self._buf is already known to hold no b"\n".
        self._scanned = 0
        self._error: str | None = None

    @property
    def limit(self) -> int:
        """The largest accepted line, terminator included, in bytes."""
        return self._limit

    @property
    def pending(self) -> int:
        """The number of bytes of an unfinished line held in the buffer."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes and return the lines they complete.

        Lines are returned without the ``\\n`` and without one ``\\r`` before it.
        Empty lines are returned too (as ``b""``); skipping them is the caller's
        choice.

        Args:
            data: the next bytes of the stream, in any segmentation.

        Returns:
            The complete lines, in order; an empty list if none was completed.

        Raises:
            LineTooLong: a line is, or can only become, longer than the limit.
                Its ``lines`` attribute holds the complete lines that preceded it.
                The buffer is then broken for good: every later call raises
                ``LineTooLong`` too, so nothing after the overlong line is parsed.
        """
        if self._error is not None:
            raise LineTooLong(self._error)
        buf = self._buf
        buf += data
        limit = self._limit
        lines: list[bytes] = []
        start = 0  # start of the current line in buf
        scan = self._scanned  # where the search for its b"\n" resumes
        while True:
            # The line [start, end] is acceptable only if end - start + 1 <= limit,
            # so its newline must lie before start + limit: never search further.
            end = buf.find(b"\n", scan, start + limit)
            if end == -1:
                if len(buf) - start >= limit:
                    # limit bytes and still no newline: the line is too long
                    # whatever follows.
                    self._fail(
                        f"line longer than {limit} bytes (no newline within the limit)",
                        lines,
                    )
                break
            stop = end - 1 if end > start and buf[end - 1] == 0x0D else end
            lines.append(bytes(buf[start:stop]))
            start = scan = end + 1
        # Drop the consumed lines in one move, not one per line (that would be
        # quadratic for a chunk holding many short lines).
        del buf[:start]
        self._scanned = len(buf)
        return lines

    def _fail(self, message: str, lines: list[bytes]) -> NoReturn:
        self._error = message
        self._buf = bytearray()  # free the memory; nothing here will be parsed
        self._scanned = 0
        raise LineTooLong(message, lines)
