"""A store kept in an SQLite file, so that runs and sessions survive a restart."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import types
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from broxi_mock.errors import ConfigError
from mock_server.fixtures import Fixtures
from mock_server.history import hour_key, usage_of_run
from mock_server.records import (
    MessageRecord,
    RunRecord,
    SessionRecord,
    TokenUsage,
    UsageEntry,
    utc_now,
)
from mock_server.statecheck import check_rows
from mock_server.statelock import StateLock
from mock_server.store import DEFAULT_MAX_RUNS, RUN_STATUSES, SESSION_STATUSES, Store

SCHEMA_VERSION = 1
# Written to the file header ("BXMK") so that another program's SQLite file is never mistaken
# for a state file and changed.
APPLICATION_ID = 0x42584D4B
INTERRUPTED_ERROR = {
    "code": "FLOW_EXECUTION_FAILED",
    "message": "The server stopped before the run finished.",
}
SCHEMA = (
    """CREATE TABLE runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        flow_id TEXT NOT NULL,
        session_id TEXT,
        workspace TEXT NOT NULL,
        input TEXT NOT NULL,
        status TEXT NOT NULL,
        progress INTEGER NOT NULL,
        output TEXT NOT NULL,
        error TEXT,
        created_at TEXT NOT NULL,
        completed_at TEXT,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL)""",
    "CREATE INDEX runs_by_status ON runs (status)",
    # A session is kept as JSON so that every field of `SessionRecord` survives a restart.
    """CREATE TABLE sessions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        record TEXT NOT NULL)""",
    """CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        id TEXT NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        timestamp TEXT NOT NULL)""",
    "CREATE INDEX messages_by_session ON messages (session_id, seq)",
    """CREATE TABLE evicted_usage (
        workspace TEXT NOT NULL,
        flow_id TEXT NOT NULL,
        hour TEXT NOT NULL,
        runs INTEGER NOT NULL,
        successful INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        duration REAL NOT NULL,
        cost REAL NOT NULL,
        PRIMARY KEY (workspace, flow_id, hour))""",
)
RUN_COLUMNS = (
    "id, flow_id, session_id, workspace, input, status, progress, output, error, created_at, "
    "completed_at, prompt_tokens, completion_tokens"
)


class SqliteStore(Store):
    """A store in an SQLite file in WAL mode; every write is one transaction, synced to disk."""

    backend = "sqlite"

    def __init__(
        self, path: Path, fixtures: Fixtures, seed: int = 0, max_runs: int = DEFAULT_MAX_RUNS
    ) -> None:
        super().__init__(fixtures, seed, max_runs)
        self.path = path
        self._lock = threading.Lock()
        if path.is_dir():
            raise ConfigError(f"{path}: state file is a folder (expected a file)")
        self._file_lock = StateLock(path)
        try:
            self._db = _open(path)
        except BaseException:
            self._file_lock.release()
            raise
        try:
            self._prepare()
        except sqlite3.Error as exc:
            self.close()
            raise ConfigError(f"{path}: state file cannot be used ({exc})") from exc
        except BaseException:
            self.close()
            raise
        self._generate_history()

    def _prepare(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"{self.path}: state file has schema version {version}, newer than this "
                f"broxi-mock understands (expected at most {SCHEMA_VERSION})"
            )
        with self._transaction() as db:
            if version == 0:
                for statement in SCHEMA:
                    db.execute(statement)
                self._insert_fixture_sessions(db)
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            # Runs the previous server process left running can never finish now.
            # NOTE: progress in flight is not written, so such a run shows no output.
            db.execute(
                "UPDATE runs SET status = 'failed', error = ?, completed_at = ? "
                "WHERE status = 'running'",
                (json.dumps(INTERRUPTED_ERROR), utc_now().isoformat()),
            )
            check_rows(db, self.path, _decode_session)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()

    def reset(self) -> None:
        with self._transaction() as db:
            for table in ("runs", "sessions", "messages", "evicted_usage"):
                db.execute(f"DELETE FROM {table}")
            self._insert_fixture_sessions(db)
        self._generate_history()

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._file_lock.release()

    def add_run(self, run: RunRecord, messages: Sequence[MessageRecord] = ()) -> None:
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                _run_row(run),
            )
            _insert_messages(db, run.session_id, messages)
            self._evict_finished_runs(db)

    def save_run(self, run: RunRecord, messages: Sequence[MessageRecord] = ()) -> None:
        row = _run_row(run)
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE runs SET flow_id=?, session_id=?, workspace=?, input=?, status=?, "
                "progress=?, output=?, error=?, created_at=?, completed_at=?, prompt_tokens=?, "
                "completion_tokens=? WHERE id=?",
                (*row[1:], row[0]),
            ).rowcount
            if updated:
                _insert_messages(db, run.session_id, messages)

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._query(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        return _run_of(rows[0]) if rows else None

    def add_session(self, session: SessionRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO sessions (id, status, record) VALUES (?, ?, ?)",
                (session.id, session.status, _encode_session(session)),
            )

    def save_session(self, session: SessionRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE sessions SET status = ?, record = ? WHERE id = ?",
                (session.status, _encode_session(session), session.id),
            )

    def get_session(self, session_id: str) -> SessionRecord | None:
        rows = self._query("SELECT record FROM sessions WHERE id = ?", (session_id,))
        if not rows:
            return None
        session = _decode_session(rows[0][0])
        if not session.workspace:
            # State files written before sessions had a workspace: the flow's one owns them.
            session.workspace = self._workspace_of(session.flow_id)
        return session

    def list_messages(
        self, session_id: str, offset: int = 0, limit: int | None = None
    ) -> tuple[list[MessageRecord], int]:
        rows = self._query(
            "SELECT id, role, content, timestamp FROM messages WHERE session_id = ? "
            "ORDER BY seq LIMIT ? OFFSET ?",
            (session_id, -1 if limit is None else limit, offset),
        )
        total = self._query("SELECT count(*) FROM messages WHERE session_id = ?", (session_id,))
        messages = [MessageRecord(r[0], r[1], r[2], dt.datetime.fromisoformat(r[3])) for r in rows]
        return messages, total[0][0]

    def count_runs(self) -> dict[str, int]:
        counts = dict.fromkeys(RUN_STATUSES, 0)
        counts.update(self._query("SELECT status, count(*) FROM runs GROUP BY status"))
        return counts

    def count_sessions(self) -> dict[str, int]:
        counts = dict.fromkeys(SESSION_STATUSES, 0)
        counts.update(self._query("SELECT status, count(*) FROM sessions GROUP BY status"))
        return counts

    def _live_usage(self, workspace: str) -> list[UsageEntry]:
        evicted = self._query(
            "SELECT hour, workspace, flow_id, runs, successful, tokens, duration, cost "
            "FROM evicted_usage WHERE workspace = ? ORDER BY hour",
            (workspace,),
        )
        entries = [UsageEntry(dt.datetime.fromisoformat(row[0]), *row[1:]) for row in evicted]
        rows = self._query(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE workspace = ? AND status != 'running' "
            "ORDER BY seq",
            (workspace,),
        )
        for row in rows:
            run = _run_of(row)
            entries.append(usage_of_run(run, self._price_of(run.flow_id)))
        return entries

    def _insert_fixture_sessions(self, db: sqlite3.Connection) -> None:
        for session, messages in self._fixture_sessions():
            db.execute(
                "INSERT INTO sessions (id, status, record) VALUES (?, ?, ?)",
                (session.id, session.status, _encode_session(session)),
            )
            _insert_messages(db, session.id, messages)

    def _evict_finished_runs(self, db: sqlite3.Connection) -> None:
        excess = db.execute("SELECT count(*) FROM runs").fetchone()[0] - self.max_runs
        if excess <= 0:
            return
        rows = db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE status != 'running' ORDER BY seq LIMIT ?",
            (excess,),
        ).fetchall()
        for row in rows:
            run = _run_of(row)
            entry = usage_of_run(run, self._price_of(run.flow_id))
            workspace, flow_id, hour = hour_key(entry)
            db.execute(
                "INSERT INTO evicted_usage VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (workspace, flow_id, hour) DO UPDATE SET "
                "runs = runs + excluded.runs, successful = successful + excluded.successful, "
                "tokens = tokens + excluded.tokens, duration = duration + excluded.duration, "
                "cost = cost + excluded.cost",
                (
                    workspace,
                    flow_id,
                    hour.isoformat(),
                    entry.runs,
                    entry.successful,
                    entry.tokens,
                    entry.duration,
                    entry.cost,
                ),
            )
            db.execute("DELETE FROM runs WHERE id = ?", (run.id,))


def _open(path: Path) -> sqlite3.Connection:
    """Open a state file, or create it; raise `ConfigError` with one line when it is unusable."""
    if path.is_dir():
        raise ConfigError(f"{path}: state file is a folder (expected a file)")
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: state file cannot be opened ({exc})") from exc
    try:
        _check_file(path, db)
        db.execute("PRAGMA journal_mode = WAL")
        # FULL syncs the log at every commit, so a finished response's data is on disk.
        db.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error as exc:
        db.close()
        raise ConfigError(f"{path}: state file cannot be used ({exc})") from exc
    except ConfigError:
        db.close()
        raise
    return db


def _check_file(path: Path, db: sqlite3.Connection) -> None:
    application_id = db.execute("PRAGMA application_id").fetchone()[0]
    tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if application_id != APPLICATION_ID and (application_id != 0 or tables):
        raise ConfigError(
            f"{path}: not a broxi-mock state file (expected application id {APPLICATION_ID:#x}, "
            f"got {application_id:#x} with {tables} schema objects)"
        )
    result = db.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise ConfigError(f"{path}: state file is corrupt (quick_check: {result})")


def _insert_messages(
    db: sqlite3.Connection, session_id: str | None, messages: Sequence[MessageRecord]
) -> None:
    if session_id is None:
        return
    db.executemany(
        "INSERT INTO messages (session_id, id, role, content, timestamp) VALUES (?, ?, ?, ?, ?)",
        [(session_id, m.id, m.role, m.content, m.timestamp.isoformat()) for m in messages],
    )


def _run_row(run: RunRecord) -> tuple[Any, ...]:
    return (
        run.id,
        run.flow_id,
        run.session_id,
        run.workspace,
        run.input,
        run.status,
        run.progress,
        run.output,
        json.dumps(run.error) if run.error is not None else None,
        run.created_at.isoformat(),
        run.completed_at.isoformat() if run.completed_at is not None else None,
        run.usage.prompt_tokens,
        run.usage.completion_tokens,
    )


def _run_of(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        id=row[0],
        flow_id=row[1],
        session_id=row[2],
        workspace=row[3],
        input=row[4],
        status=row[5],
        progress=row[6],
        output=row[7],
        error=json.loads(row[8]) if row[8] is not None else None,
        created_at=dt.datetime.fromisoformat(row[9]),
        completed_at=dt.datetime.fromisoformat(row[10]) if row[10] is not None else None,
        usage=TokenUsage(row[11], row[12]),
    )


def _encode_session(session: SessionRecord) -> str:
    data = {}
    for field in fields(session):
        value = getattr(session, field.name)
        data[field.name] = value.isoformat() if isinstance(value, dt.datetime) else value
    return json.dumps(data, ensure_ascii=False)


def _decode_session(text: str) -> SessionRecord:
    data = json.loads(text)
    hints = typing.get_type_hints(SessionRecord)
    values = {}
    for field in fields(SessionRecord):
        if field.name not in data:
            continue  # A field added since the file was written keeps its default.
        value = data[field.name]
        if isinstance(value, str) and _is_datetime(hints[field.name]):
            value = dt.datetime.fromisoformat(value)
        values[field.name] = value
    return SessionRecord(**values)


def _is_datetime(hint: Any) -> bool:
    if hint is dt.datetime:
        return True
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return is_union and dt.datetime in typing.get_args(hint)
