"""Admin routes: reset state to the fixtures and count what the store keeps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.conftest import auth
from tests.helpers import parse_stream

BODY = {"input": "Where is my order?"}


async def while_streaming(
    app: Starlette, body: dict[str, Any], during: Callable[[httpx.AsyncClient], Awaitable[Any]]
) -> tuple[httpx.Response, Any]:
    """Stream a run and call `during` once the run is in flight; return both results."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:

        async def act() -> Any:
            for _ in range(500):
                if app.state.engine.live:
                    break
                await asyncio.sleep(0.002)
            return await during(client)

        stream = client.post("/v1/flows/flow_abc123/stream", json=body, headers=auth())
        response, result = await asyncio.gather(stream, act())
        return response, result


def test_state_counts_runs_by_status(client: TestClient) -> None:
    for flow_id in ("flow_abc123", "flow_sql789", "flow_flaky01"):
        client.post(f"/v1/flows/{flow_id}/run", json=BODY, headers=auth())

    response = client.get("/_mock/state")

    assert response.status_code == 200
    assert response.json() == {
        "backend": "memory",
        "max_runs": 10_000,
        "runs": {"running": 0, "completed": 2, "failed": 1, "total": 3},
        "sessions": {"active": 3, "ended": 1, "total": 4},
        "streams_in_flight": 0,
    }


def test_state_shows_stream_in_flight(make_app: Callable[..., Starlette]) -> None:
    app = make_app(stream_delay_ms=20)

    async def read_state(client: httpx.AsyncClient) -> dict[str, Any]:
        return dict((await client.get("/_mock/state")).json())

    stream, during = asyncio.run(while_streaming(app, BODY, read_state))
    after = TestClient(app).get("/_mock/state").json()

    assert parse_stream(stream.text).events[-1].data["type"] == "end"
    assert during["streams_in_flight"] == 1
    assert during["runs"]["running"] == 1
    assert after["streams_in_flight"] == 0
    assert after["runs"] == {"running": 0, "completed": 1, "failed": 0, "total": 1}


def test_reset_restores_fixture_state(client: TestClient) -> None:
    session = client.post("/v1/sessions", json={"flow_id": "flow_abc123"}, headers=auth()).json()
    turn = {"input": "Hello again", "session_id": "session_def456"}
    run = client.post("/v1/flows/flow_abc123/run", json=turn, headers=auth()).json()

    response = client.post("/_mock/reset")

    assert response.status_code == 200
    assert response.json()["runs"]["total"] == 0
    assert response.json()["sessions"]["total"] == 4
    assert client.get(f"/v1/runs/{run['id']}", headers=auth()).status_code == 404
    gone = client.get(f"/v1/sessions/{session['id']}/history", headers=auth())
    assert gone.status_code == 404
    history = client.get("/v1/sessions/session_def456/history", headers=auth()).json()
    assert history["total"] == 2
    assert history["messages"][1]["content"] == "How can I assist you today?"


def test_reset_never_reuses_ids(client: TestClient) -> None:
    before = {
        client.post("/v1/flows/flow_abc123/run", json=BODY, headers=auth()).json()["id"]
        for _ in range(20)
    }

    client.post("/_mock/reset")
    after = {
        client.post("/v1/flows/flow_abc123/run", json=BODY, headers=auth()).json()["id"]
        for _ in range(20)
    }

    assert len(before | after) == 40


def test_reset_mid_stream_keeps_stream_not_run(make_app: Callable[..., Starlette]) -> None:
    app = make_app(stream_delay_ms=20)
    body = {**BODY, "session_id": "session_123"}

    async def reset(client: httpx.AsyncClient) -> int:
        return (await client.post("/_mock/reset")).status_code

    stream, status = asyncio.run(while_streaming(app, body, reset))

    client = TestClient(app)
    events = parse_stream(stream.text).events
    assert status == 200
    assert events[-1].data["type"] == "end"
    assert client.get(f"/v1/runs/{events[0].data['run_id']}", headers=auth()).status_code == 404
    assert client.get("/v1/sessions/session_123/history", headers=auth()).json()["total"] == 0
    assert client.get("/_mock/state").json()["streams_in_flight"] == 0
