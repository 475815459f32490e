"""The baseline: a thread-per-client broadcast chat server (the original app's design).

One thread per connection reads JSON lines; one global lock guards the client
table, the message counter and every write, and a message is written to each
recipient with its own ``sendall`` (one write per copy). No storage, no checks
beyond what the load generator needs: it speaks just enough of protocol v1
(``hello`` → ``welcome`` + ``caught_up``; ``say`` → ``ack`` + ``message`` to
everyone, the sender's copy with its ``cid``; ``dm``; ``ping``; ``bye``) for
``python -m bench`` to drive it exactly as it drives chinwag.

Run: ``python -m bench.baselines.threaded --host 127.0.0.1 --port 0``; it logs
``baseline listening on HOST:PORT`` on stderr. ``--fault drop|dup|reorder``
breaks the delivery of message 7 to client ``b1`` on purpose, so that the tests
can show the load generator's checks catch it.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from typing import Any

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _ts() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _line(data: dict[str, Any]) -> bytes:
    return (_dumps(data) + "\n").encode()


class Client:
    __slots__ = ("alive", "nick", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.nick: str | None = None
        self.alive = True

    def send(self, data: bytes) -> None:
        """Write under the global lock (the caller holds it)."""
        if not self.alive or not data:
            return
        try:
            self.sock.sendall(data)
        except OSError:
            self.alive = False


FAULT_ID = 7
FAULT_NICK = "b1"


class Chat:
    def __init__(self, fault: str = "") -> None:
        self.lock = threading.Lock()
        self.clients: dict[str, Client] = {}
        self.last_id = 0
        self.fault = fault
        self.held: bytes | None = None  # the copy a "reorder" fault sends late
        self.held_from: str | None = None

    def serve(self, sock: socket.socket) -> None:
        client = Client(sock)
        try:
            with sock, sock.makefile("rb") as lines:
                for raw in lines:
                    if not raw.strip():
                        continue
                    try:
                        obj = json.loads(raw)
                    except ValueError:
                        self.reply(client, {"type": "error", "code": "bad_frame"}, None)
                        continue
                    if not isinstance(obj, dict) or not self.handle(client, obj):
                        break
        except OSError:
            pass
        finally:
            with self.lock:
                client.alive = False
                if client.nick is not None and self.clients.get(client.nick) is client:
                    del self.clients[client.nick]

    def reply(self, client: Client, data: dict[str, Any], ref: Any) -> None:
        if ref is not None:
            data["ref"] = ref
        with self.lock:
            client.send(_line(data))

    def _break(self, data: bytes, sender: str | None) -> bytes:
        """The deliberate fault (tests only): what FAULT_NICK gets instead of ``data``.

        "reorder" holds message FAULT_ID back until the next message of the same
        sender has gone out: an inversion of that sender's order.
        """
        if self.held is not None and sender == self.held_from:
            data, self.held = data + self.held, None
        elif self.last_id == FAULT_ID:
            if self.fault == "drop":
                return b""
            if self.fault == "dup":
                return data + data
            if self.fault == "reorder":
                self.held, self.held_from = data, sender
                return b""
        return data

    def handle(self, client: Client, obj: dict[str, Any]) -> bool:
        kind = obj.get("type")
        ref = obj.get("ref")
        if kind == "hello":
            nick = str(obj.get("nick", ""))
            with self.lock:
                if client.nick is not None or not nick or nick in self.clients:
                    client.send(_line({"type": "error", "code": "nick_taken", "ref": ref}))
                    return True
                client.nick = nick
                self.clients[nick] = client
                welcome = {"type": "welcome", "proto": 1, "nick": nick, "account": False}
                welcome.update(server={"name": "threaded-baseline", "version": "0"})
                welcome.update(motd="", rooms=["lobby"])
                if ref is not None:
                    welcome["ref"] = ref
                client.send(_line(welcome))
                client.send(_line({"type": "caught_up", "missed": 0, "rooms": {}, "dms": {}}))
            return True
        if client.nick is None:
            self.reply(client, {"type": "error", "code": "not_logged_in"}, ref)
            return True
        if kind in ("say", "dm"):
            body, cid = obj.get("body"), obj.get("cid")
            with self.lock:
                self.last_id += 1
                ack = {"type": "ack", "id": self.last_id, "ts": _ts()}
                if cid is not None:
                    ack["cid"] = cid
                if ref is not None:
                    ack["ref"] = ref
                message: dict[str, Any] = {"type": "message", "id": self.last_id, "ts": ack["ts"]}
                message["from"] = client.nick
                if kind == "say":
                    message["room"] = obj.get("room", "lobby")
                    targets = list(self.clients.values())
                else:
                    to = self.clients.get(str(obj.get("to")))
                    if to is None:
                        client.send(_line({"type": "error", "code": "no_such_user", "ref": ref}))
                        return True
                    message["to"] = to.nick
                    targets = [client] if to is client else [client, to]
                message["body"] = body
                plain = _line(message)
                own = plain if cid is None else _line({**message, "cid": cid})
                client.send(_line(ack))
                for other in targets:
                    data = own if other is client else plain
                    if self.fault and other.nick == FAULT_NICK:
                        data = self._break(data, client.nick)
                    other.send(data)
            return True
        if kind == "ping":
            self.reply(client, {"type": "pong"}, ref)
            return True
        if kind == "bye":
            self.reply(client, {"type": "bye"}, ref)
            return False
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fault", choices=["drop", "dup", "reorder"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    chat = Chat(args.fault or "")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(4096)
    host, port = listener.getsockname()[:2]
    print(f"baseline listening on {host}:{port}", file=sys.stderr, flush=True)
    try:
        while True:
            sock, _ = listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=chat.serve, args=(sock,), daemon=True).start()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
