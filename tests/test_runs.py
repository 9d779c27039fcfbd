"""The run lifecycle over HTTP: states, progress, failures from fixtures, and run events."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.conftest import ACME_TOKEN, LiveServer, auth, stop_server
from tests.helpers import call_and_leave, fixtures_with_flows, flow_fixture, parse_stream

BODY = {"input": "Where is my order?"}
COIN_FLOW = flow_fixture("flow_coin", failure={"rate": 0.5, "message": "The coin came down tails."})
SHORT_FAILURE_FLOW = flow_fixture(
    "flow_short", failure={"after_tokens": 10_000, "message": "Failed after all its output."}
)


def record_events(app: Starlette) -> list[tuple[str, str, str]]:
    """Subscribe to the app's events; return the list that fills with (event, run, status)."""
    seen: list[tuple[str, str, str]] = []

    def listener(event: str, data: dict[str, Any]) -> None:
        seen.append((event, str(data.get("run_id")), str(data.get("status"))))

    app.state.events.subscribe(listener)
    return seen


def coin_statuses(client: TestClient, count: int) -> list[str]:
    """Run the coin-flip flow `count` times and return the statuses."""
    runs = [client.post("/v1/flows/flow_coin/run", json=BODY, headers=auth()) for _ in range(count)]
    return [run.json()["status"] for run in runs]


def test_run_then_get_returns_same_run(client: TestClient) -> None:
    created = client.post("/v1/flows/flow_sum456/run", json=BODY, headers=auth())

    fetched = client.get(f"/v1/runs/{created.json()['id']}", headers=auth())

    assert created.status_code == 200
    assert fetched.status_code == 200
    assert fetched.json() == created.json()
    run = created.json()
    assert run["status"] == "completed"
    assert run["progress"] == 100
    assert run["error"] is None
    assert run["completed_at"] >= run["created_at"]
    assert run["usage"]["completion_tokens"] > 0


def test_run_of_other_workspace_is_404(client: TestClient) -> None:
    created = client.post("/v1/flows/flow_abc123/run", json=BODY, headers=auth()).json()

    response = client.get(f"/v1/runs/{created['id']}", headers=auth(ACME_TOKEN))

    assert response.status_code == 404
    assert response.json()["error"]["details"]["field"] == "run_id"


def test_failing_flow_fails_after_tokens(client: TestClient) -> None:
    response = client.post("/v1/flows/flow_flaky01/run", json=BODY, headers=auth())

    run = response.json()
    assert response.status_code == 200
    assert run["status"] == "failed"
    assert run["error"] == {
        "code": "FLOW_EXECUTION_FAILED",
        "message": "The document search tool timed out after 30 seconds.",
    }
    assert run["usage"]["completion_tokens"] == 12
    assert 0 < run["progress"] < 100
    assert run["completed_at"] is not None


def test_failure_after_all_tokens_still_fails(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(fixtures_dir=fixtures_with_flows(tmp_path / "f", SHORT_FAILURE_FLOW))

    response = client.post("/v1/flows/flow_short/stream", json=BODY, headers=auth())

    events = parse_stream(response.text).events
    assert events[-1].data["type"] == "error"
    assert "end" not in [event.data["type"] for event in events]
    run = client.get(f"/v1/runs/{events[0].data['run_id']}", headers=auth()).json()
    assert run["status"] == "failed"
    assert run["progress"] == 100


def test_failure_rate_repeats_with_seed(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    fixtures = fixtures_with_flows(tmp_path / "f", COIN_FLOW)

    first = coin_statuses(make_client(fixtures_dir=fixtures, seed=7), 16)
    again = coin_statuses(make_client(fixtures_dir=fixtures, seed=7), 16)
    other = coin_statuses(make_client(fixtures_dir=fixtures, seed=8), 16)

    assert first == again
    assert first != other
    assert set(first) == {"completed", "failed"}


def test_failure_rate_restarts_after_reset(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(fixtures_dir=fixtures_with_flows(tmp_path / "f", COIN_FLOW), seed=3)
    before = coin_statuses(client, 8)

    client.post("/_mock/reset")
    after = coin_statuses(client, 8)

    assert after == before


def test_plain_run_emits_events_once(make_app: Callable[..., Starlette]) -> None:
    app = make_app()
    seen = record_events(app)
    client = TestClient(app)

    ok = client.post("/v1/flows/flow_abc123/run", json=BODY, headers=auth()).json()
    failed = client.post("/v1/flows/flow_flaky01/run", json=BODY, headers=auth()).json()

    assert seen == [
        ("flow.run.started", ok["id"], "running"),
        ("flow.run.completed", ok["id"], "completed"),
        ("flow.run.started", failed["id"], "running"),
        ("flow.run.failed", failed["id"], "failed"),
    ]


def test_stream_emits_events_once(make_app: Callable[..., Starlette]) -> None:
    app = make_app()
    seen = record_events(app)
    client = TestClient(app)

    ok = client.post("/v1/flows/flow_abc123/stream", json=BODY, headers=auth())
    failed = client.post("/v1/flows/flow_flaky01/stream", json=BODY, headers=auth())

    ok_id = parse_stream(ok.text).events[0].data["run_id"]
    failed_id = parse_stream(failed.text).events[0].data["run_id"]
    assert seen == [
        ("flow.run.started", ok_id, "running"),
        ("flow.run.completed", ok_id, "completed"),
        ("flow.run.started", failed_id, "running"),
        ("flow.run.failed", failed_id, "failed"),
    ]


def test_resume_emits_no_events(make_app: Callable[..., Starlette]) -> None:
    app = make_app()
    client = TestClient(app)
    first = client.post("/v1/flows/flow_abc123/stream", json=BODY, headers=auth())
    run_id = str(parse_stream(first.text).events[0].data["run_id"])
    seen = record_events(app)

    client.post("/v1/flows/flow_abc123/stream", json=BODY, headers={**auth(), "X-Run-ID": run_id})

    assert seen == []


def test_concurrent_runs_each_finish_once(make_app: Callable[..., Starlette]) -> None:
    app = make_app(stream_delay_ms=2)
    seen = record_events(app)

    async def run_many() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
            calls = [
                client.post(f"/v1/flows/{flow}/{kind}", json=BODY, headers=auth())
                for flow in ("flow_abc123", "flow_flaky01")
                for kind in ("run", "stream", "run", "stream")
            ]
            return await asyncio.gather(*calls)

    responses = asyncio.run(run_many())

    assert all(response.status_code == 200 for response in responses)
    by_run: dict[str, list[str]] = {}
    for event, run_id, _ in seen:
        by_run.setdefault(run_id, []).append(event)
    assert len(by_run) == 8
    finals = sorted(events[1] for events in by_run.values())
    assert finals == ["flow.run.completed"] * 4 + ["flow.run.failed"] * 4
    assert all(len(events) == 2 for events in by_run.values())
    assert all(events[0] == "flow.run.started" for events in by_run.values())


def test_plain_run_fails_when_client_leaves(make_app: Callable[..., Starlette]) -> None:
    app = make_app(stream_delay_ms=50)
    failed: list[dict[str, Any]] = []
    app.state.events.subscribe(
        lambda event, data: failed.append(data) if event == "flow.run.failed" else None
    )
    body = b'{"input": "Where is my order?"}'

    asyncio.run(call_and_leave(app, "/v1/flows/flow_abc123/run", body, len(body), 0.2))

    entry = app.state.journal.latest()[0]
    assert failed[0]["error"]["code"] == "CLIENT_DISCONNECTED"
    assert app.state.store.count_runs()["failed"] == 1
    assert entry.status == 499


def test_shutdown_fails_waiting_plain_run(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server("--stream-delay-ms", "60000", "--state", str(tmp_path / "state.db"))
    answers: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                f"{server.url}/v1/flows/flow_abc123/run", json=BODY, headers=auth(), timeout=30
            )
        )
    )
    request.start()
    wait_for_running_run(server.url)

    started = time.monotonic()
    stop_server(server.process)
    request.join(timeout=10)

    assert time.monotonic() - started < 5
    assert "Application shutdown complete" in server.output()
    assert answers[0].json()["status"] == "failed"
    assert "shut down" in answers[0].json()["error"]["message"]


def wait_for_running_run(url: str) -> None:
    """Wait (at most 10 s) until the server has a run in flight."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/_mock/state").json()["runs"]["running"] == 1:
            return
        time.sleep(0.05)
    raise AssertionError("no run started within 10 s")
