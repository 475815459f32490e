"""The refusal vocabulary: every error a peer can be told about, with a stable code.

`code` is stable API (it is the wire `code` of protocol v1 §6); the wording of
`message` is not. Transports turn a `ChatError` into their own error frame at the
edge; nothing else in the program needs to know about wire formats.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ChatError(Exception):
    """A refusal the peer should hear about.

    Args:
        message: human-readable text, safe to show to the peer.
        **extra: additional wire fields (for example ``retry_after``).
    """

    code: ClassVar[str] = "server_error"
    default_message: ClassVar[str] = "the server could not do that; nothing was applied, retry"

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        self.extra: dict[str, Any] = extra
        super().__init__(self.message)


class BadFrame(ChatError):
    code = "bad_frame"
    default_message = "that line is not a JSON object with a string 'type'"


class FrameTooLarge(ChatError):
    code = "frame_too_large"
    default_message = "that line is longer than the server accepts"


class UnknownType(ChatError):
    code = "unknown_type"
    default_message = "unknown frame type"


class BadRequest(ChatError):
    code = "bad_request"
    default_message = "a field is missing or has the wrong type"


class UnsupportedProto(ChatError):
    code = "unsupported_proto"
    default_message = "this server speaks protocol version 1"


class NotLoggedIn(ChatError):
    code = "not_logged_in"
    default_message = "send hello first"


class BadNick(ChatError):
    code = "bad_nick"
    default_message = "that nick is not allowed"


class NickTaken(ChatError):
    code = "nick_taken"
    default_message = "someone online is using that nick; retry shortly or pick another"


class PasswordRequired(ChatError):
    code = "password_required"
    default_message = "that nick is registered; send its password"


class BadPassword(ChatError):
    code = "bad_password"
    default_message = "wrong nick or password"


class NickRegistered(ChatError):
    code = "nick_registered"
    default_message = "that nick is already registered"


class WeakPassword(ChatError):
    code = "weak_password"
    default_message = "passwords need at least 8 characters"


class RateLimited(ChatError):
    code = "rate_limited"
    default_message = "too many requests; wait and retry"

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        super().__init__(message, retry_after=round(max(retry_after, 0.001), 3))
        self.retry_after = retry_after


class QuotaExceeded(ChatError):
    code = "quota_exceeded"
    default_message = "the recipient has too many undelivered messages; try later"


class NoSuchUser(ChatError):
    code = "no_such_user"
    default_message = "nobody by that nick is registered or online"


class BadRoom(ChatError):
    code = "bad_room"
    default_message = "room names are 1-32 of a-z 0-9 _ -"


class BadKey(ChatError):
    """A join of a room with a key (IRC +k) without it, or with another (branch ircmodes)."""

    code = "bad_key"
    default_message = "that room needs a key to join; ask one of its mods for it"


class RoomFull(ChatError):
    """A join of a room that has as many online as its member limit (IRC +l; ircmodes)."""

    code = "room_full"
    default_message = "that room is full; ask one of its mods for an invite, or try later"


class NotMember(ChatError):
    code = "not_member"
    default_message = "you are not in that room; join it first"


class BadBody(ChatError):
    code = "bad_body"
    default_message = "a message is 1-4000 characters without control characters"


class Forbidden(ChatError):
    code = "forbidden"
    default_message = "that is not allowed for you"


class ServerError(ChatError):
    code = "server_error"


class NotFound(ChatError):
    """§8: an ``id`` you may not see or that does not exist: the same answer for both."""

    code = "not_found"
    default_message = "there is no such message that you can see"


class Banned(ChatError):
    """§8: this account is banned from the server (``until``: when it ends, or null)."""

    code = "banned"
    default_message = "this account is banned from this server"


class SessionEnded(ChatError):
    """The server's operator ended the session (extension); ``reason`` says why."""

    code = "session_ended"
    default_message = "the server's operator ended your session"


ALL_CODES: frozenset[str] = frozenset(
    [ChatError.code, *(cls.code for cls in ChatError.__subclasses__())]
)
