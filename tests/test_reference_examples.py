"""Replay the API reference's examples against a real `broxi-mock serve`.

The reference's curl commands use the placeholder token YOUR_API_TOKEN, which the bundled
fixtures accept, so they work as printed once the host is swapped for the local server.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer

HEADERS = {"Authorization": "Bearer YOUR_API_TOKEN", "Content-Type": "application/json"}


def parse_events(text: str) -> list[dict[str, Any]]:
    """Split an event stream into events with their `id` and decoded `data`."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "data" in fields:
            events.append({"id": fields.get("id"), "data": json.loads(fields["data"])})
    return events


def timestamp(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.conftest import start_server, stop_server

    live = start_server(tmp_path_factory.mktemp("serve"), "--stream-delay-ms", "1")
    yield live
    stop_server(live.process)


def test_basic_run_example(server: LiveServer) -> None:
    body = {"input": "What is the weather like today?", "variables": {"location": "San Francisco"}}

    response = httpx.post(f"{server.url}/v1/flows/flow_abc123/run", headers=HEADERS, json=body)

    assert response.status_code == 200
    run = response.json()
    assert run["flow_id"] == "flow_abc123"
    assert run["id"].startswith("run_")
    assert run["status"] == "completed"
    assert run["output"]
    assert timestamp(run["completed_at"]) > timestamp(run["created_at"])
    usage = run["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] > 0
    assert response.headers["X-RateLimit-Limit"] == "1000"


def test_streaming_example(server: LiveServer) -> None:
    body = {"input": "Tell me a story", "session_id": "session_123"}
    headers = {**HEADERS, "Accept": "text/event-stream"}

    response = httpx.post(f"{server.url}/v1/flows/flow_abc123/stream", headers=headers, json=body)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_events(response.text)
    kinds = [event["data"]["type"] for event in events]
    assert kinds[0] == "start"
    assert kinds[-1] == "end"
    assert set(kinds[1:-1]) == {"token"}
    ids = [int(event["id"]) for event in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    run_id = events[0]["data"]["run_id"]
    assert events[-1]["data"]["run_id"] == run_id
    streamed = "".join(event["data"]["content"] for event in events[1:-1])
    run = httpx.get(f"{server.url}/v1/runs/{run_id}", headers=HEADERS).json()
    assert run["output"] == streamed
    assert run["usage"] == events[-1]["data"]["usage"]
    assert run["session_id"] == "session_123"


def test_get_run_example(server: LiveServer) -> None:
    created = httpx.post(
        f"{server.url}/v1/flows/flow_abc123/run", headers=HEADERS, json={"input": "Hi"}
    ).json()

    response = httpx.get(f"{server.url}/v1/runs/{created['id']}", headers=HEADERS)

    assert response.status_code == 200
    run = response.json()
    assert run["status"] in ("running", "completed", "failed")
    assert 0 <= run["progress"] <= 100
    assert run["error"] is None
    assert run["output"] == created["output"]


def test_list_flows_example(server: LiveServer) -> None:
    params = {"limit": 20, "offset": 0, "status": "published"}

    response = httpx.get(f"{server.url}/v1/flows", headers=HEADERS, params=params)

    assert response.status_code == 200
    page = response.json()
    assert page["limit"] == 20
    assert page["offset"] == 0
    assert page["total"] >= 6
    first = page["flows"][0]
    assert first["id"] == "flow_abc123"
    assert first["name"] == "Customer Support Bot"
    assert first["endpoint"] == f"{server.url}/v1/flows/flow_abc123/run"
    assert {flow["status"] for flow in page["flows"]} == {"published"}


def test_get_flow_example(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/v1/flows/flow_abc123", headers=HEADERS)

    assert response.status_code == 200
    flow = response.json()
    assert flow["config"]["input_schema"]["properties"]["message"] == {"type": "string"}
    assert flow["config"]["output_schema"]["properties"]["confidence"] == {"type": "number"}


def test_create_session_example(server: LiveServer) -> None:
    body = {
        "flow_id": "flow_abc123",
        "user_id": "user_xyz789",
        "metadata": {"source": "web_app", "version": "1.0"},
    }

    response = httpx.post(f"{server.url}/v1/sessions", headers=HEADERS, json=body)

    assert response.status_code == 201
    session = response.json()
    assert session["id"].startswith("session_")
    assert session["status"] == "active"
    assert session["metadata"] == body["metadata"]
    assert session["user_id"] == "user_xyz789"


def test_session_history_example(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/v1/sessions/session_def456/history", headers=HEADERS)

    assert response.status_code == 200
    history = response.json()
    assert history["session_id"] == "session_def456"
    assert history["total"] == len(history["messages"])
    first, second = history["messages"][:2]
    assert (first["role"], first["content"]) == ("user", "Hello, I need help")
    assert (second["role"], second["content"]) == ("assistant", "How can I assist you today?")


def test_usage_example(server: LiveServer) -> None:
    today = dt.datetime.now(dt.UTC).date()
    params: dict[str, str] = {
        "start_date": (today - dt.timedelta(days=30)).isoformat(),
        "end_date": today.isoformat(),
        "granularity": "day",
    }

    response = httpx.get(f"{server.url}/v1/analytics/usage", headers=HEADERS, params=params)

    assert response.status_code == 200
    report = response.json()
    metrics = report["metrics"]
    assert len(report["daily_breakdown"]) == 30
    assert metrics["total_runs"] > 0
    assert metrics["successful_runs"] + metrics["failed_runs"] == metrics["total_runs"]
    assert metrics["total_runs"] == sum(day["runs"] for day in report["daily_breakdown"])
    assert metrics["total_tokens"] == sum(day["tokens"] for day in report["daily_breakdown"])


def test_error_example_shape(server: LiveServer) -> None:
    response = httpx.post(f"{server.url}/v1/flows/flow_abc123/run", headers=HEADERS, content=b"{}")

    assert response.status_code == 400
    envelope = response.json()
    assert envelope["error"]["code"] == "INVALID_REQUEST"
    assert envelope["error"]["details"] == {
        "field": "/input",
        "location": "body",
        "reason": '"input" is a required property',
    }
    assert envelope["request_id"] == response.headers["X-Request-ID"]


def test_serve_prints_url_and_token(server: LiveServer) -> None:
    output: Callable[[], str] = server.output

    banner = output()

    assert f"{server.url}/v1" in banner
    assert "openapi/broxi.yaml" in banner
    assert "YOUR_API_TOKEN" in banner
