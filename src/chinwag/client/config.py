"""Where a client keeps its files, and the stable ``device`` id it sends at ``hello``.

The directory is, in order of precedence: the ``config_dir`` argument, the
``CHINWAG_CONFIG_DIR`` environment variable (tests use it to stay out of
``$HOME``), then the platform's user config directory for ``chinwag``
(``~/.config/chinwag`` on Linux).

The device id identifies this install to the server, which keeps one offline
cursor per (account, device) (protocol v1 §5). It must therefore be the same on
every run: it is created once, at random, and stored in the file ``device``.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Final

import platformdirs

__all__ = ["CONFIG_DIR_ENV", "DEVICE_FILE", "config_dir", "device_id", "is_valid_device"]

CONFIG_DIR_ENV: Final = "CHINWAG_CONFIG_DIR"
"""Environment variable that overrides the platform config directory."""

DEVICE_FILE: Final = "device"
"""Name of the file, in the config directory, that holds the device id."""

_DEVICE_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_valid_device(device: str) -> bool:
    """Whether ``device`` is 1-64 characters of ``A-Z a-z 0-9 _ -`` (protocol v1 §2)."""
    return _DEVICE_RE.fullmatch(device) is not None


def config_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The client's config directory (not created).

    Args:
        override: use this directory; None means ``$CHINWAG_CONFIG_DIR``, else the
            platform's user config directory.
    """
    if override is not None:
        return Path(override)
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env)
    return Path(platformdirs.user_config_dir("chinwag", appauthor=False))


def device_id(directory: str | os.PathLike[str] | None = None) -> str:
    """This install's device id, created and stored on first use.

    Two clients that start at once with the same directory agree on one id:
    the file is created exclusively, and the loser reads the winner's.

    Args:
        directory: the config directory; see :func:`config_dir`.

    Returns:
        A string of 1-64 characters of ``A-Z a-z 0-9 _ -``.

    Raises:
        OSError: the directory cannot be created or the file cannot be written.
    """
    folder = config_dir(directory)
    path = folder / DEVICE_FILE
    for _ in range(3):
        try:
            text = path.read_text(encoding="ascii", errors="replace").strip()
        except FileNotFoundError:
            pass
        else:
            if is_valid_device(text):
                return text
            # A damaged file: replace it (the server will treat us as a new device).
            path.unlink(missing_ok=True)
        folder.mkdir(parents=True, exist_ok=True)
        new = "d-" + secrets.token_hex(12)
        tmp = folder / f".{DEVICE_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        tmp.write_text(new + "\n", encoding="ascii")
        try:
            # link() fails if the file exists, so a concurrent writer cannot be
            # overwritten; the file is never seen half-written.
            os.link(tmp, path)
        except FileExistsError:
            continue
        except OSError:
            # Filesystems without hard links: fall back to an exclusive create.
            try:
                with path.open("x", encoding="ascii") as fh:
                    fh.write(new + "\n")
            except FileExistsError:
                continue
        finally:
            tmp.unlink(missing_ok=True)
        return new
    raise OSError(f"cannot create a device id in {folder}")
