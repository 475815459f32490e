"""Strict peers for the server tests: every frame received is checked against the contract."""

from __future__ import annotations

from typing import Any

from conftest import RECV_TIMEOUT, Peer

ERROR_CODES = frozenset(
    [
        "bad_frame",
        "frame_too_large",
        "unknown_type",
        "bad_request",
        "unsupported_proto",
        "not_logged_in",
        "bad_nick",
        "nick_taken",
        "password_required",
        "bad_password",
        "nick_registered",
        "weak_password",
        "rate_limited",
        "quota_exceeded",
        "no_such_user",
        "bad_room",
        "not_member",
        "bad_body",
        "forbidden",
        "server_error",
        "banned",  # §8 moderation (issue 16)
    ]
)


def check_frame(frame: Any) -> None:
    """Every server frame: an object with a string type; errors carry no internals."""
    assert isinstance(frame, dict), frame
    assert isinstance(frame.get("type"), str), frame
    if frame["type"] == "error":
        assert frame.get("code") in ERROR_CODES, frame
        message = frame.get("message")
        assert isinstance(message, str), frame
        assert "Traceback" not in message, frame
        assert 'File "' not in message, frame


class CheckedPeer(Peer):
    """A Peer that checks every frame it receives with `check_frame`."""

    async def recv(self, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        frame = await super().recv(timeout)
        check_frame(frame)
        return frame

    async def expect_closed(self, timeout: float = RECV_TIMEOUT) -> list[dict[str, Any]]:
        frames = await super().expect_closed(timeout)
        for frame in frames:
            check_frame(frame)
        return frames

    async def reply(self) -> dict[str, Any]:
        """The next frame that is not presence, typing or room_info (the notice that
        follows a join's ``ok``, §8)."""
        while (frame := await self.recv())["type"] in ("presence", "typing", "room_info"):
            pass
        return frame

    async def error(self, code: str, ref: str | None = None) -> dict[str, Any]:
        """The next reply is ``error code`` (carrying ``ref``, when one is given)."""
        frame = await self.reply()
        assert frame["type"] == "error" and frame["code"] == code, frame
        if ref is not None:
            assert frame.get("ref") == ref, frame
        return frame
