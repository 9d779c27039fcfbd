"""Log formats of the server: readable text, or one JSON object per line for machines."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
from typing import Any, TextIO

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Lines wait at most this long before they are written, so a burst shares one write.
FLUSH_INTERVAL_S = 0.05


# C0 and C1 controls, DEL and the Unicode line separators: a client could forge log lines
# with them, or hide text from a terminal.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """Write control characters as escapes, so that client text cannot start a new log line."""
    return _CONTROLS.sub(_escape_one, text)


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class TextFormatter(logging.Formatter):
    """Format a record as one text line; control characters in the message are escaped.

    The date and time of day are formatted once per second, not once per line.
    """

    def __init__(self, fmt: str = TEXT_FORMAT) -> None:
        super().__init__(fmt)
        self._second = -1
        self._stamp = ""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        return escape_controls(line)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._stamp = super().formatTime(record, datefmt).rpartition(",")[0]
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object; structured `fields` passed in `extra` become keys."""

    def format(self, record: logging.LogRecord) -> str:
        created = dt.datetime.fromtimestamp(record.created, dt.UTC)
        entry: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes the lines of a burst in one write, about 50 ms later.

    A write and flush per line would cost a system call on every request. Instead, a flusher
    thread sleeps until a line arrives, waits `FLUSH_INTERVAL_S`, then writes all waiting lines.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._wake = threading.Event()
        threading.Thread(target=self._flush_forever, name="log-writer", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
        if not self._wake.is_set():
            self._wake.set()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._pending = self._pending, []
            if lines:
                self.stream.write("".join(lines))
            super().flush()

    def _flush_forever(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(FLUSH_INTERVAL_S)
            self._wake.clear()
            self.flush()


def logging_config(level: str, log_format: str, access_log: bool = True) -> dict[str, Any]:
    """Build the `logging.config.dictConfig` settings of `serve`, uvicorn's loggers included.

    The access lines come from `broxi_mock.access`; uvicorn's own access log stays off so that
    each request is logged once.
    """
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if log_format == "json" else {"()": TextFormatter, "fmt": TEXT_FORMAT}
    )
    level_name = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
            "batched": {
                "class": "broxi_mock.logs.BatchingStreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            # Each request logs an access line, so the server's lines are written in batches.
            "broxi_mock": {"handlers": ["batched"], "level": level_name, "propagate": False},
            # Access lines are INFO records, so like the rest they show at level info or debug.
            "broxi_mock.access": {"level": level_name if access_log else "CRITICAL"},
            "uvicorn": {"handlers": ["stderr"], "level": level_name, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
