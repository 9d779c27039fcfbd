"""Check every row of a state file at start-up, so that a bad row never becomes a 500 later."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from broxi_mock.errors import ConfigError
from mock_server.store import RUN_STATUSES, SESSION_STATUSES

# A check returns what is wrong with a column's value, or None.
Check = Callable[[Any], str | None]


def _time(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected an ISO 8601 time, got {value!r}"
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return f"expected an ISO 8601 time, got {value!r}"
    return None if parsed.tzinfo is not None else f"time {value!r} has no UTC offset"


def _optional_time(value: Any) -> str | None:
    return None if value is None else _time(value)


def _one_of(allowed: tuple[str, ...]) -> Check:
    def check(value: Any) -> str | None:
        return None if value in allowed else f"expected one of {list(allowed)}, got {value!r}"

    return check


def _count(value: Any) -> str | None:
    ok = isinstance(value, int) and value >= 0
    return None if ok else f"expected a non-negative integer, got {value!r}"


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"expected text, got {value!r}"


def _error_object(value: Any) -> str | None:
    if value is None:
        return None
    try:
        decoded = json.loads(value)
    except (TypeError, ValueError):
        return f"expected a JSON object or NULL, got {value!r}"
    return None if isinstance(decoded, dict) else f"expected a JSON object, got {value!r}"


RUN_CHECKS: dict[str, Check] = {
    "id": _text,
    "flow_id": _text,
    "workspace": _text,
    "input": _text,
    "output": _text,
    "status": _one_of(RUN_STATUSES),
    "progress": _count,
    "error": _error_object,
    "created_at": _time,
    "completed_at": _optional_time,
    "prompt_tokens": _count,
    "completion_tokens": _count,
}
MESSAGE_CHECKS: dict[str, Check] = {
    "id": _text,
    "session_id": _text,
    "role": _one_of(("user", "assistant")),
    "content": _text,
    "timestamp": _time,
}
SESSION_CHECKS: dict[str, Check] = {"id": _text, "status": _one_of(SESSION_STATUSES)}
USAGE_CHECKS: dict[str, Check] = {"hour": _time, "runs": _count, "successful": _count}


def check_rows(db: sqlite3.Connection, path: Path, decode_session: Callable[[str], Any]) -> None:
    """Raise `ConfigError` naming the table, row and column of the first unusable value."""
    tables = (
        ("runs", RUN_CHECKS),
        ("messages", MESSAGE_CHECKS),
        ("sessions", SESSION_CHECKS),
        ("evicted_usage", USAGE_CHECKS),
    )
    for table, checks in tables:
        for row_id, column, problem in _problems(db, table, checks):
            raise ConfigError(f"{path}: table {table}, row {row_id}: {column}: {problem}")
    for seq, record in db.execute("SELECT seq, record FROM sessions ORDER BY seq"):
        record_problem = _session_problem(record, decode_session)
        if record_problem is not None:
            raise ConfigError(f"{path}: table sessions, row {seq}: record: {record_problem}")


def _problems(
    db: sqlite3.Connection, table: str, checks: dict[str, Check]
) -> Iterator[tuple[str, str, str]]:
    columns = list(checks)
    # evicted_usage has no seq column; SQLite's rowid numbers its rows instead.
    key = "rowid" if table == "evicted_usage" else "seq"
    cursor = db.execute(f"SELECT {key}, {', '.join(columns)} FROM {table} ORDER BY {key}")
    for key_value, *values in cursor:
        for column, value in zip(columns, values, strict=True):
            problem = checks[column](value)
            if problem is not None:
                yield str(key_value), column, problem


def _session_problem(record: Any, decode_session: Callable[[str], Any]) -> str | None:
    try:
        session = decode_session(record)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return f"not a valid session record ({exc})"
    created_at = session.created_at
    if not isinstance(created_at, dt.datetime) or created_at.tzinfo is None:
        return f"created_at {created_at!r} is not a time with a UTC offset"
    if session.status not in SESSION_STATUSES:
        return f"status: expected one of {list(SESSION_STATUSES)}, got {session.status!r}"
    if not isinstance(session.metadata, dict):
        return f"metadata: expected a JSON object, got {session.metadata!r}"
    return None
