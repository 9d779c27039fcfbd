"""Ending sessions: by the admin route, and by themselves after the idle timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.testclient import TestClient

from broxi_mock.spec import bundled_fixtures_dir
from mock_server.events import EventBus
from mock_server.fixtures import load_fixtures
from mock_server.sessions import SessionLifecycle
from mock_server.store import MemoryStore
from tests.conftest import auth

Event = tuple[str, dict[str, Any]]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record_events(bus: EventBus) -> list[Event]:
    events: list[Event] = []
    bus.subscribe(lambda event, data: events.append((event, data)))
    return events


def build_lifecycle(idle_timeout: float | None) -> tuple[SessionLifecycle, list[Event], FakeClock]:
    store = MemoryStore(load_fixtures(bundled_fixtures_dir()))
    bus = EventBus()
    events = record_events(bus)
    clock = FakeClock()
    return SessionLifecycle(store, bus, idle_timeout, clock), events, clock


def create_session(client: TestClient) -> str:
    response = client.post("/v1/sessions", json={"flow_id": "flow_abc123"}, headers=auth())
    assert response.status_code == 201
    return str(response.json()["id"])


def test_end_route_emits_ended_by_client(make_app: Callable[..., Starlette]) -> None:
    app = make_app()
    events = record_events(app.state.events)
    client = TestClient(app)
    session_id = create_session(client)

    response = client.post(f"/_mock/sessions/{session_id}/end")

    assert response.status_code == 200
    assert response.json()["status"] == "ended"
    assert events[-1] == (
        "session.ended",
        {
            "session_id": session_id,
            "flow_id": "flow_abc123",
            "user_id": None,
            "status": "ended",
            "reason": "ended_by_client",
        },
    )


def test_ending_twice_is_409(client: TestClient) -> None:
    session_id = create_session(client)
    client.post(f"/_mock/sessions/{session_id}/end")

    response = client.post(f"/_mock/sessions/{session_id}/end")

    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "CONFLICT",
        "message": f"Session {session_id!r} has already ended.",
        "details": {
            "field": "session_id",
            "location": "path",
            "reason": "session has already ended",
        },
    }


def test_ending_unknown_session_is_404(client: TestClient) -> None:
    response = client.post("/_mock/sessions/session_nowhere/end")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Session 'session_nowhere' not found."


def test_ended_session_rejects_runs(client: TestClient) -> None:
    session_id = create_session(client)
    client.post(f"/_mock/sessions/{session_id}/end")

    response = client.post(
        "/v1/flows/flow_abc123/run", json={"input": "Hi", "session_id": session_id}, headers=auth()
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"]["reason"] == "session has ended"


def test_idle_fixture_session_ends_after_timeout() -> None:
    lifecycle, events, clock = build_lifecycle(idle_timeout=60)

    clock.now += 59
    early = lifecycle.end_idle_sessions()
    clock.now += 1
    ended = lifecycle.end_idle_sessions()

    assert early == []
    assert "session_123" in ended
    assert ("session_123", "idle_timeout") in [
        (data["session_id"], data["reason"]) for event, data in events if event == "session.ended"
    ]
    assert lifecycle.store.get_session("session_123").status == "ended"  # type: ignore[union-attr]


def test_activity_restarts_idle_time() -> None:
    lifecycle, _, clock = build_lifecycle(idle_timeout=60)

    clock.now += 50
    lifecycle.events.emit("flow.run.started", {"run_id": "run_1", "session_id": "session_123"})
    lifecycle.events.emit("flow.run.completed", {"run_id": "run_1", "session_id": "session_123"})
    clock.now += 50
    ended = lifecycle.end_idle_sessions()

    assert "session_123" not in ended
    assert "session_def456" in ended


def test_session_with_running_run_stays_open() -> None:
    lifecycle, _, clock = build_lifecycle(idle_timeout=60)
    lifecycle.events.emit("flow.run.started", {"run_id": "run_1", "session_id": "session_123"})

    clock.now += 120
    while_running = lifecycle.end_idle_sessions()
    lifecycle.events.emit("flow.run.failed", {"run_id": "run_1", "session_id": "session_123"})
    clock.now += 60
    after_run = lifecycle.end_idle_sessions()

    assert "session_123" not in while_running
    assert after_run == ["session_123"]


def test_no_idle_timeout_keeps_sessions_open() -> None:
    lifecycle, _, clock = build_lifecycle(idle_timeout=None)

    clock.now += 10**9
    ended = lifecycle.end_idle_sessions()

    assert ended == []


def test_idle_sessions_end_in_background(make_app: Callable[..., Starlette]) -> None:
    app = make_app(session_idle_timeout=0.1)
    events = record_events(app.state.events)

    with TestClient(app) as client:
        session_id = create_session(client)
        deadline = time.monotonic() + 10
        while app.state.store.get_session(session_id).status == "active":
            assert time.monotonic() < deadline
            time.sleep(0.02)

    ended = [data for event, data in events if event == "session.ended"]
    assert {data["session_id"]: data["reason"] for data in ended}[session_id] == "idle_timeout"


def test_reset_watches_fixture_sessions_again() -> None:
    lifecycle, _, clock = build_lifecycle(idle_timeout=60)
    clock.now += 60
    lifecycle.end_idle_sessions()

    lifecycle.store.reset()
    lifecycle.reset()
    clock.now += 60
    ended_again = lifecycle.end_idle_sessions()

    assert "session_123" in ended_again


def test_ended_session_is_stored_in_state_file(
    make_app: Callable[..., Starlette], tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite3"
    with TestClient(make_app(state_path=state)) as client:
        session_id = create_session(client)
        client.post(f"/_mock/sessions/{session_id}/end")

    with TestClient(make_app(state_path=state)) as client:
        app = client.app
        reopened = app.state.store.get_session(session_id)  # type: ignore[attr-defined]

    assert reopened.status == "ended"
