"""State file rows are checked at start-up: a bad row stops the server with one line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from broxi_mock.cli import main
from mock_server.fixtures import load_fixtures
from mock_server.sqlstore import SqliteStore
from tests.conftest import REPO_ROOT

RUN_ROW = (
    "INSERT INTO runs (id, flow_id, session_id, workspace, input, status, progress, output, "
    "error, created_at, completed_at, prompt_tokens, completion_tokens) VALUES ('run_1', "
    "'flow_abc123', NULL, 'ws_default', 'hi', 'completed', 100, 'ok', NULL, "
    "'2024-01-10T09:00:00+00:00', '2024-01-10T09:00:01+00:00', 3, 4)"
)


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `serve` fail instead of blocking, should a bad file ever pass its checks."""

    def reject_start(*args: object) -> None:
        raise AssertionError("serve started a server despite a bad file")

    monkeypatch.setattr("broxi_mock.cli._run_server", reject_start)


def state_with(tmp_path: Path, *statements: str) -> Path:
    path = tmp_path / "state.db"
    SqliteStore(path, load_fixtures(REPO_ROOT / "fixtures")).close()
    with sqlite3.connect(path) as db:
        db.execute(RUN_ROW)
        for statement in statements:
            db.execute(statement)
    return path


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        (
            "UPDATE runs SET created_at = 'garbage'",
            "table runs, row 1: created_at: expected an ISO 8601 time, got 'garbage'",
        ),
        (
            "UPDATE runs SET created_at = '2024-01-10T09:00:00'",
            "table runs, row 1: created_at: time '2024-01-10T09:00:00' has no UTC offset",
        ),
        (
            "UPDATE runs SET error = '{not json'",
            "table runs, row 1: error: expected a JSON object or NULL, got '{not json'",
        ),
        (
            "UPDATE runs SET status = 'weird'",
            "table runs, row 1: status: expected one of ['running', 'completed', 'failed'], "
            "got 'weird'",
        ),
        (
            "UPDATE messages SET timestamp = 'x' WHERE seq = 1",
            "table messages, row 1: timestamp: expected an ISO 8601 time, got 'x'",
        ),
        (
            "UPDATE sessions SET record = '{bad' WHERE seq = 1",
            "table sessions, row 1: record: not a valid session record (Expecting property name",
        ),
        (
            "UPDATE sessions SET status = 'weird' WHERE seq = 2",
            "table sessions, row 2: status: expected one of ['active', 'ended'], got 'weird'",
        ),
    ],
    ids=["run-time", "run-naive-time", "run-error", "run-status", "message", "session", "status"],
)
def test_bad_state_row_stops_serve(tmp_path: Path, statement: str, problem: str) -> None:
    path = state_with(tmp_path, statement)

    result = CliRunner().invoke(main, ["serve", "--port", "0", "--state", str(path)])

    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith(f"Error: {path}: {problem}")


def test_good_state_rows_load(tmp_path: Path) -> None:
    path = state_with(tmp_path)

    store = SqliteStore(path, load_fixtures(REPO_ROOT / "fixtures"))

    run = store.get_run("run_1")
    store.close()
    assert run is not None
    assert run.usage.prompt_tokens == 3
