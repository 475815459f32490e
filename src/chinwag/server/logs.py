"""The server's log on stderr: plain text lines, or one JSON object per line (``log_format``).

JSON suits journald and log shippers: each event is one line whatever its
message holds (a traceback included), with fixed keys::

    {"ts": "2026-12-02T01:57:08.602Z", "level": "info", "logger": "chinwag.server",
     "msg": "chinwag listening on 127.0.0.1:5050 (data in /var/lib/chinwag)"}

plus ``"exc"`` (the traceback) when there is one. Rotation is left to journald
(or whatever reads stderr). No secret reaches the log in either format: the
server never hands a password or a token to a logger.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TextIO

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        ms = int(record.msecs)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        event = {
            "ts": f"{stamp}.{ms:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            event["stack"] = self.formatStack(record.stack_info)
        return json.dumps(event, ensure_ascii=False)


def configure(level: str, log_format: str, stream: TextIO) -> None:
    """Send every log record of ``level`` or above to ``stream`` in ``log_format``.

    Args:
        level: debug, info, warning or error (checked by the settings).
        log_format: text or json (checked by the settings).
        stream: where the lines go (stderr).
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # a Python warning is an event too, in the same format
