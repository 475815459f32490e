"""The control socket: how ``chinwag admin`` reaches the running server.

``DATA/control.sock`` is a Unix socket, mode 0600, so only the server's user
can connect; the server also checks the peer's uid (``SO_PEERCRED``) where the
system has it. The protocol is one JSON line each way per connection:

    {"op": "delete", "nick": "bob"}
    {"op": "reset-password", "nick": "bob", "password": "..."}
    {"op": "ban", "nick": "bob", "room": null, "until": 1796220300000, "reason": "spam"}
    {"op": "grant", "nick": "bob", "role": "admin", "room": null}
    -> {"ok": true, "message": "deleted bob; the nick stays reserved; 1 live session(s) ended"}
    -> {"ok": false, "status": 1, "message": "no account called 'bob'"}

``status`` is the exit code ``chinwag admin`` gives. The request is at most
``max_frame_bytes`` long (the limit of a client's frame, which may carry a
password too), must come within ``control_timeout`` seconds, and at most
``control_max_conns`` connections are served at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chinwag.config import Settings
from chinwag.core.operator import AccountActions, ActionRefused, ModerationActions

log = logging.getLogger("chinwag.control")

CONTROL_NAME = "control.sock"
OPS = ("delete", "reset-password", "grant", "ban", "unban", "kick")
# The longest path a Unix socket can have on Linux (sun_path is 108 bytes, NUL included).
_MAX_PATH = 107
_LINGER = 1.0  # seconds a replied connection takes the peer's late input before closing


@dataclass(frozen=True, slots=True)
class Request:
    """One control request: ``op`` on the account ``nick`` (and ``password``, to set)."""

    op: str
    nick: str
    password: str | None = None
    # moderation (issue 16): where (None: server-wide), the role, until when (ms), why
    room: str | None = None
    role: str | None = None
    until_ms: int | None = None
    reason: str = ""


class BadRequest(ValueError):
    """A control request that cannot be carried out; the message says why."""


def parse_request(line: bytes) -> Request:
    """The request in one line (without its newline).

    Raises:
        BadRequest: not a JSON object, an unknown op, or a missing field.
    """
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        raise BadRequest("a request is one JSON object on one line") from None
    if not isinstance(obj, dict):
        raise BadRequest("a request is one JSON object on one line")
    op, nick, password = obj.get("op"), obj.get("nick"), obj.get("password")
    if op not in OPS:
        raise BadRequest(f"unknown op {str(op)[:40]!r}; one of: {', '.join(OPS)}")
    if not isinstance(nick, str):
        raise BadRequest(f"{op} needs a nick (a string)")
    if op == "reset-password" and not isinstance(password, str):
        raise BadRequest("reset-password needs the new password (a string)")
    room, role, until, reason = (
        obj.get("room"),
        obj.get("role"),
        obj.get("until"),
        obj.get("reason"),
    )
    if not isinstance(room, str | None) or not isinstance(reason, str | None):
        raise BadRequest(f"{op}: room and reason are strings")
    if op == "grant" and not isinstance(role, str):
        raise BadRequest("grant needs a role (a string)")
    if until is not None and (not isinstance(until, int) or isinstance(until, bool)):
        raise BadRequest(f"{op}: until is milliseconds since the epoch, or null")
    return Request(
        op,
        nick,
        password if isinstance(password, str) else None,
        room,
        role if isinstance(role, str) else None,
        until,
        reason or "",
    )


def encode_reply(ok: bool, message: str, status: int = 0) -> bytes:
    """One reply line: ``ok`` and what to tell the operator (``status``: the exit code)."""
    reply: dict[str, Any] = {"ok": ok, "message": message}
    if not ok:
        reply["status"] = status or 1
    return json.dumps(reply).encode() + b"\n"


class ControlUnusable(OSError):
    """The control socket cannot be made (say, its path is too long); the message says why."""


class ControlServer:
    """Serves `Request`s on ``DATA/control.sock`` with the server's `AccountActions`."""

    def __init__(
        self,
        settings: Settings,
        actions: AccountActions,
        path: Path,
        moderation: ModerationActions | None = None,
    ) -> None:
        self._settings = settings
        self._actions = actions
        self._moderation = moderation
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._active = 0
        self._handlers: set[asyncio.Task[None]] = set()
        self._reading: set[asyncio.Task[None]] = set()  # handlers still waiting for a request

    @classmethod
    async def open(
        cls,
        settings: Settings,
        actions: AccountActions,
        data_dir: Path,
        moderation: ModerationActions | None = None,
    ) -> ControlServer:
        """Listen on ``data_dir/control.sock``; call only while holding the data dir's lock.

        A socket file left there (by a server that was killed) is replaced: the
        lock says no other server runs.

        Raises:
            ControlUnusable: the path is too long, the socket cannot be made, or
                its mode is not 0600.
        """
        path = data_dir / CONTROL_NAME
        if len(os.fsencode(path)) > _MAX_PATH:
            raise ControlUnusable(
                f"the control socket path {path} is longer than {_MAX_PATH} bytes; "
                "use a shorter --data"
            )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is made 0600: never a moment more open
        try:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            sock.bind(os.fspath(path))
        except OSError as exc:
            sock.close()
            raise ControlUnusable(
                f"cannot make the control socket {path}: {exc.strerror}"
            ) from None
        finally:
            os.umask(old_umask)
        control = cls(settings, actions, path, moderation)
        mode = path.stat().st_mode
        if not stat.S_ISSOCK(mode) or stat.S_IMODE(mode) != 0o600:
            sock.close()
            await control.close()
            raise ControlUnusable(f"{path} has mode {stat.S_IMODE(mode):o}, not 600")
        control._server = await asyncio.start_unix_server(
            control._handle, sock=sock, limit=settings.max_frame_bytes
        )
        return control

    async def close(self) -> None:
        """Stop listening; requests being carried out get their reply, silent connections end."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in self._reading:
            task.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=self._settings.shutdown_grace)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._active += 1
        try:
            reply = await self._serve(reader, writer)
            writer.write(reply)
            await asyncio.wait_for(writer.drain(), self._settings.control_timeout)
            # A refusal at connect (another user, busy) comes before the request:
            # end only our side and take what the peer still sends until it closes,
            # so that its request meets an open socket and it reads the reply.
            if writer.can_write_eof():
                writer.write_eof()
                await asyncio.wait_for(_discard_input(reader), _LINGER)
        except (OSError, TimeoutError):
            pass  # the admin went away: what was asked is done (or not started), nothing to say
        finally:
            self._active -= 1
            self._handlers.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        uid = _peer_uid(writer.get_extra_info("socket"))
        if uid is not None and uid != os.geteuid():
            log.warning("refused a control connection from uid %d (not the server's user)", uid)
            return encode_reply(
                False,
                f"only the server's own user ({_user_name()}) may use its control socket; "
                "run chinwag admin as that user",
            )
        if self._active > self._settings.control_max_conns:
            return encode_reply(False, "the server is busy with other admin requests; retry")
        task = asyncio.current_task()
        assert task is not None
        self._reading.add(task)
        try:
            line = await asyncio.wait_for(reader.readline(), self._settings.control_timeout)
        except TimeoutError:
            return encode_reply(False, "no request came in time; connection closed")
        except ValueError:  # asyncio's limit: no newline within max_frame_bytes
            return encode_reply(
                False, f"the request is longer than {self._settings.max_frame_bytes} bytes"
            )
        finally:
            self._reading.discard(task)
        try:
            request = parse_request(line.rstrip(b"\r\n"))
        except BadRequest as exc:
            return encode_reply(False, str(exc), 2)
        try:
            if request.op == "delete":
                done = await self._actions.delete(request.nick)
            elif request.op in ("grant", "ban", "unban", "kick"):
                done = await self._moderate(request)
            else:
                assert request.password is not None
                done = await self._actions.reset_password(request.nick, request.password)
        except ActionRefused as exc:
            log.info("admin %s %r refused: %s", request.op, request.nick[:40], exc.message)
            return encode_reply(False, exc.message, exc.status)
        except Exception:
            log.exception("admin %s %r failed", request.op, request.nick[:40])
            return encode_reply(False, "the server could not do that; see its log")
        log.info("admin: %s", done)  # never the password: done does not carry it
        return encode_reply(True, done)

    async def _moderate(self, request: Request) -> str:
        if self._moderation is None:
            raise ActionRefused("this server has no moderation; upgrade it", 1)
        if request.op == "grant":
            assert request.role is not None
            return await self._moderation.grant(request.nick, request.role, request.room)
        return await self._moderation.moderate(
            request.op, request.nick, request.room, request.until_ms, request.reason
        )


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _peer_uid(sock: socket.socket | None) -> int | None:
    """The uid of a Unix socket's peer, where the system tells it (Linux: SO_PEERCRED)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class NotRunning(Exception):
    """No server answers on the data directory's control socket."""


async def ask(data_dir: Path, request: dict[str, Any], timeout: float) -> tuple[bool, str, int]:
    """Send one request to the server running on ``data_dir``: (ok, message, status).

    Raises:
        NotRunning: no socket there (or it could not be there: its path is too
            long), or nobody listening on it (a killed server's).
        OSError, TimeoutError: the server did not answer properly.
    """
    path = data_dir / CONTROL_NAME
    if len(os.fsencode(path)) > _MAX_PATH:
        raise NotRunning()  # no server can listen there (see ControlServer.open)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    except (FileNotFoundError, ConnectionRefusedError):
        raise NotRunning() from None
    uid = _peer_uid(writer.get_extra_info("socket"))
    if uid is not None and uid != os.geteuid():
        # Not the server (which refuses other users anyway): someone who could write to
        # the data directory listens there, and a request may carry a password.
        writer.close()
        raise OSError(
            f"{path} is served by uid {uid}, not by this user ({_user_name()}): nothing was "
            "sent; check who may write to the data directory"
        )
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await asyncio.wait_for(writer.drain(), timeout)
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    try:
        reply = json.loads(line)
        ok, message = reply["ok"], reply["message"]
        status = reply.get("status", 0)
    except (ValueError, KeyError, TypeError):
        raise OSError("the server's control socket gave no proper reply") from None
    return bool(ok), str(message), int(status) if isinstance(status, int) else 1


async def _discard_input(reader: asyncio.StreamReader) -> None:
    """Read and drop what the peer sends, until it closes."""
    while await reader.read(65_536):
        pass
