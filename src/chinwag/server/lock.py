"""The data directory's lock: one server, or one offline ``chinwag admin``, at a time.

Two servers on one data directory would each keep their own index of account
names in memory (docs/architecture.md), and the second would let anyone log in
as an account the first registered. So the server holds an exclusive
``flock`` on ``DATA/lock`` for its whole life, with its pid written in the
file. The kernel releases a ``flock`` when its holder exits, however it
exits: a lock left by a kill -9 never blocks the next start. The file itself
stays (removing a lock file would race with the next holder).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "lock"

# What a holder writes after its pid, and how others name it in their refusal.
_WHO = {"server": "another chinwag server", "admin": "chinwag admin"}


class DataDirError(Exception):
    """The data directory cannot be locked; the message says why and what to do."""


class DataDirBusy(DataDirError):
    """Another process holds the data directory's lock; the message says which and what to do."""

    def __init__(self, data_dir: Path, pid: int | None, holder: str) -> None:
        who = _WHO.get(holder, "another chinwag process")
        pid_text = f" (pid {pid})" if pid is not None else ""
        advice = (
            "stop it first or use another --data"
            if holder != "admin"
            else "wait until it has finished, or use another --data"
        )
        super().__init__(f"{who}{pid_text} is using {data_dir}; {advice}")
        self.pid = pid
        self.holder = holder


class DataDirLock:
    """An exclusive lock on a data directory, held until `release` (or the process ends)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, data_dir: Path, holder: str) -> DataDirLock:
        """Take the lock of ``data_dir`` for ``holder`` ("server" or "admin"), without waiting.

        Raises:
            DataDirBusy: another process holds it.
            DataDirError: the lock file cannot be opened (e.g. no write permission).
        """
        path = data_dir / LOCK_NAME
        try:
            # O_CLOEXEC: a child (the game bot) must not inherit, and outlive us with, the lock.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise DataDirError(
                f"cannot open {path}: {exc.strerror}; run as the data directory's owner "
                "or use another --data"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, other = _holder(fd)
            os.close(fd)
            raise DataDirBusy(data_dir, pid, other) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {holder}\n".encode(), 0)
        return cls(fd)

    def release(self) -> None:
        """Let the next server (or admin) in; calling it again does nothing."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1


def _holder(fd: int) -> tuple[int | None, str]:
    """The pid and kind the holder wrote (None, "" while it has not written them yet)."""
    try:
        words = os.pread(fd, 64, 0).decode("ascii").split()
    except (OSError, UnicodeDecodeError):
        return None, ""
    pid = int(words[0]) if words and words[0].isdigit() else None
    return pid, words[1] if len(words) > 1 else ""
