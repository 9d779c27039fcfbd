"""Log formats of the server: readable text, or one JSON object per line for machines."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
    """Format a record as one text line; control characters in the message are escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        return escape_controls(line)


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
            }
        },
        "loggers": {
            "broxi_mock": {"handlers": ["stderr"], "level": level_name, "propagate": False},
            # Access lines are INFO records, so like the rest they show at level info or debug.
            "broxi_mock.access": {"level": level_name if access_log else "CRITICAL"},
            "uvicorn": {"handlers": ["stderr"], "level": level_name, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
