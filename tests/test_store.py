"""The store: bounded memory, SQLite state that survives restarts and crashes, clear errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from broxi_mock.cli import main
from broxi_mock.errors import ConfigError
from mock_server.fixtures import load_fixtures
from mock_server.records import RunRecord, utc_now
from mock_server.sqlstore import SqliteStore
from mock_server.store import MemoryStore
from tests.conftest import REPO_ROOT, LiveServer, auth

BODY = {"input": "Where is my order?"}
BACKENDS = ["memory", "sqlite"]


@pytest.fixture
def make_store_client(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> Callable[..., TestClient]:
    """Build a client on the memory store or on an SQLite file in `tmp_path`."""

    def build(backend: str, **overrides: Any) -> TestClient:
        if backend == "sqlite":
            overrides["state_path"] = tmp_path / "state.db"
        return make_client(**overrides)

    return build


def run_ids(client: TestClient, count: int, flow_id: str = "flow_cls321") -> list[str]:
    responses = [
        client.post(f"/v1/flows/{flow_id}/run", json=BODY, headers=auth()) for _ in range(count)
    ]
    return [response.json()["id"] for response in responses]


@pytest.mark.parametrize("backend", BACKENDS)
def test_oldest_finished_runs_are_evicted(
    make_store_client: Callable[..., TestClient], backend: str
) -> None:
    client = make_store_client(backend, max_runs=3)

    ids = run_ids(client, 5)

    statuses = [client.get(f"/v1/runs/{run_id}", headers=auth()).status_code for run_id in ids]
    assert statuses == [404, 404, 200, 200, 200]
    state = client.get("/_mock/state").json()
    assert state["runs"]["total"] == 3
    assert state["backend"] == backend
    today = dt.datetime.now(dt.UTC).date()
    query = {"flow_id": "flow_cls321", "start_date": today.isoformat()}
    report = client.get("/v1/analytics/usage", params=query, headers=auth()).json()
    assert report["metrics"]["total_runs"] == 5


def test_running_runs_are_never_evicted() -> None:
    store = MemoryStore(load_fixtures(REPO_ROOT / "fixtures"), max_runs=2)
    running = RunRecord("run_live", "flow_abc123", None, "ws_demo", "hi", utc_now())

    store.add_run(running)
    for number in range(3):
        done = RunRecord(f"run_{number}", "flow_abc123", None, "ws_demo", "hi", utc_now())
        done.status, done.completed_at = "completed", utc_now()
        store.add_run(done)

    assert store.get_run("run_live") is not None
    assert store.count_runs() == {"running": 1, "completed": 1, "failed": 0}


@pytest.mark.parametrize("backend", BACKENDS)
def test_saved_session_keeps_every_field(
    make_store_client: Callable[..., TestClient], backend: str
) -> None:
    store = make_store_client(backend).app.state.store
    session = store.get_session("session_def456")

    store.save_session(dataclasses.replace(session, status="ended", metadata={"closed": True}))

    assert store.get_session("session_def456") == dataclasses.replace(
        session, status="ended", metadata={"closed": True}
    )
    assert store.count_sessions() == {"active": 2, "ended": 2}


def test_sqlite_store_reopens_with_same_data(tmp_path: Path) -> None:
    fixtures = load_fixtures(REPO_ROOT / "fixtures")
    first = SqliteStore(tmp_path / "state.db", fixtures)
    session = first.get_session("session_123")
    first.save_session(dataclasses.replace(session, status="ended"))
    first.close()

    again = SqliteStore(tmp_path / "state.db", fixtures)

    assert again.get_session("session_123") == dataclasses.replace(session, status="ended")
    assert again.list_messages("session_def456")[1] == 2
    again.close()


def test_old_session_record_gets_flow_workspace(tmp_path: Path) -> None:
    fixtures = load_fixtures(REPO_ROOT / "fixtures")
    SqliteStore(tmp_path / "state.db", fixtures).close()
    with sqlite3.connect(tmp_path / "state.db") as db:
        (record,) = db.execute("SELECT record FROM sessions WHERE id = 'session_123'").fetchone()
        old = {key: value for key, value in json.loads(record).items() if key != "workspace"}
        db.execute("UPDATE sessions SET record = ? WHERE id = 'session_123'", (json.dumps(old),))

    store = SqliteStore(tmp_path / "state.db", fixtures)
    session = store.get_session("session_123")
    store.close()

    assert session is not None
    assert session.workspace == "ws_demo"


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_fixture_session_has_flow_workspace(
    make_store_client: Callable[..., TestClient], backend: str
) -> None:
    store = make_store_client(backend).app.state.store

    session = store.get_session("session_def456")

    assert session.workspace == "ws_demo"


@pytest.mark.e2e
def test_restart_keeps_run_and_session(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    state = str(tmp_path / "demo.db")
    first = live_server("--state", state, "--stream-delay-ms", "0")
    session = httpx.post(
        f"{first.url}/v1/sessions",
        json={"flow_id": "flow_abc123", "metadata": {"demo": 1}},
        headers=auth(),
    ).json()
    turn = {"input": "Keep this", "session_id": session["id"]}
    run = httpx.post(f"{first.url}/v1/flows/flow_abc123/run", json=turn, headers=auth()).json()
    history = httpx.get(f"{first.url}/v1/sessions/{session['id']}/history", headers=auth()).json()
    first.process.terminate()
    first.process.wait(timeout=10)

    second = live_server("--state", state, "--stream-delay-ms", "0")

    kept_run = httpx.get(f"{second.url}/v1/runs/{run['id']}", headers=auth())
    kept = httpx.get(f"{second.url}/v1/sessions/{session['id']}/history", headers=auth())
    assert kept_run.json() == run
    assert kept.json() == history
    assert [message["role"] for message in history["messages"]] == ["user", "assistant"]
    state_counts = httpx.get(f"{second.url}/_mock/state").json()
    assert state_counts["backend"] == "sqlite"
    assert state_counts["runs"]["completed"] == 1


@pytest.mark.e2e
def test_crash_mid_stream_leaves_state_usable(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    state = str(tmp_path / "crash.db")
    first = live_server("--state", state, "--stream-delay-ms", "200")
    session = httpx.post(
        f"{first.url}/v1/sessions", json={"flow_id": "flow_abc123"}, headers=auth()
    ).json()
    url = f"{first.url}/v1/flows/flow_abc123/stream"
    body = {"input": "Interrupted", "session_id": session["id"]}
    with httpx.stream("POST", url, json=body, headers=auth(), timeout=10) as response:
        lines = response.iter_lines()
        start = json.loads(next(line for line in lines if line.startswith("data: "))[6:])
        first.process.kill()
        first.process.wait(timeout=10)

    second = live_server("--state", state, "--stream-delay-ms", "0")

    run = httpx.get(f"{second.url}/v1/runs/{start['run_id']}", headers=auth()).json()
    assert run["status"] == "failed"
    assert run["error"] == {
        "code": "FLOW_EXECUTION_FAILED",
        "message": "The server stopped before the run finished.",
    }
    history = httpx.get(f"{second.url}/v1/sessions/{session['id']}/history", headers=auth())
    assert [message["content"] for message in history.json()["messages"]] == ["Interrupted"]
    assert sqlite3.connect(state).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def write_foreign_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")


def write_future_state(path: Path) -> None:
    SqliteStore(path, load_fixtures(REPO_ROOT / "fixtures")).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")


@pytest.mark.parametrize(
    ("prepare", "problem"),
    [
        (lambda path: path.write_bytes(b"not a database at all" * 100), "file is not a database"),
        (write_foreign_database, "not a broxi-mock state file"),
        (write_future_state, "schema version 99, newer than this broxi-mock understands"),
        (lambda path: None, "cannot be opened"),
    ],
    ids=["garbage", "foreign-sqlite", "newer-schema", "missing-folder"],
)
def test_bad_state_file_is_one_line(
    tmp_path: Path, prepare: Callable[[Path], None], problem: str
) -> None:
    path = tmp_path / "state.db"
    if problem == "cannot be opened":
        path = tmp_path / "missing" / "state.db"
    prepare(path)

    result = CliRunner().invoke(main, ["serve", "--state", str(path)])

    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Error: {path}: ")
    assert problem in lines[0]


def test_bad_state_file_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    write_foreign_database(path)

    with pytest.raises(ConfigError):
        SqliteStore(path, load_fixtures(REPO_ROOT / "fixtures"))

    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]


def test_state_folder_is_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--state", str(tmp_path)])

    assert result.exit_code == 2
    assert "--state" in result.output
    assert "is a directory" in result.output


def test_state_folder_rejected_by_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="state file is a folder"):
        SqliteStore(tmp_path, load_fixtures(REPO_ROOT / "fixtures"))
