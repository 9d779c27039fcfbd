"""Sessions over HTTP: creation, history from runs and streams, paging, concurrent turns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.conftest import ACME_TOKEN, READ_ONLY_TOKEN, auth
from tests.helpers import parse_stream


def new_session(client: TestClient, flow_id: str = "flow_abc123") -> dict[str, Any]:
    body = {"flow_id": flow_id, "user_id": "user_42", "metadata": {"source": "test", "n": 1}}
    response = client.post("/v1/sessions", json=body, headers=auth())
    assert response.status_code == 201
    return dict(response.json())


def history(client: TestClient, session_id: str, query: str = "") -> dict[str, Any]:
    response = client.get(f"/v1/sessions/{session_id}/history{query}", headers=auth())
    assert response.status_code == 200
    return dict(response.json())


def test_created_session_has_empty_history(client: TestClient) -> None:
    session = new_session(client)

    page = history(client, session["id"])

    assert session["flow_id"] == "flow_abc123"
    assert session["user_id"] == "user_42"
    assert session["metadata"] == {"source": "test", "n": 1}
    assert session["status"] == "active"
    assert page == {
        "session_id": session["id"],
        "messages": [],
        "total": 0,
        "limit": 100,
        "offset": 0,
    }


@pytest.mark.parametrize(
    ("flow_id", "status", "reason"),
    [("flow_missing", 404, "not found"), ("flow_acme01", 403, "draft flow of another workspace")],
    ids=["unknown-flow", "foreign-draft"],
)
def test_session_needs_visible_flow(
    client: TestClient, flow_id: str, status: int, reason: str
) -> None:
    response = client.post("/v1/sessions", json={"flow_id": flow_id}, headers=auth())

    assert response.status_code == status
    assert response.json()["error"]["details"]["reason"] == reason


def test_read_only_token_cannot_create_session(client: TestClient) -> None:
    response = client.post(
        "/v1/sessions", json={"flow_id": "flow_abc123"}, headers=auth(READ_ONLY_TOKEN)
    )

    assert response.status_code == 403


def test_runs_and_streams_append_in_order(client: TestClient) -> None:
    session_id = new_session(client)["id"]
    plain = {"input": "My parcel is late", "session_id": session_id}
    streamed = {"input": "It was order 1234", "session_id": session_id}

    run = client.post("/v1/flows/flow_abc123/run", json=plain, headers=auth()).json()
    stream = client.post("/v1/flows/flow_abc123/stream", json=streamed, headers=auth())

    events = parse_stream(stream.text).events
    reply = "".join(str(event.data["content"]) for event in events[1:-1])
    page = history(client, session_id)
    messages = [(message["role"], message["content"]) for message in page["messages"]]
    assert messages == [
        ("user", "My parcel is late"),
        ("assistant", run["output"]),
        ("user", "It was order 1234"),
        ("assistant", reply),
    ]
    assert page["total"] == 4
    timestamps = [message["timestamp"] for message in page["messages"]]
    assert timestamps == sorted(timestamps)


def test_later_reply_refers_to_earlier_turn(client: TestClient) -> None:
    session_id = new_session(client)["id"]
    turn = {"input": "My parcel never arrived", "session_id": session_id}

    first = client.post("/v1/flows/flow_abc123/run", json=turn, headers=auth()).json()
    second = client.post(
        "/v1/flows/flow_abc123/run", json={**turn, "input": "Any news?"}, headers=auth()
    ).json()

    assert "earlier" not in first["output"]
    assert 'Following up on your earlier message ("My parcel never arrived")' in second["output"]


def test_story_session_keeps_its_hero(client: TestClient) -> None:
    session_id = new_session(client, "flow_wrt987")["id"]
    turn = {"input": "A dragon who bakes bread", "session_id": session_id}

    first = client.post("/v1/flows/flow_wrt987/run", json=turn, headers=auth()).json()
    second = client.post(
        "/v1/flows/flow_wrt987/run", json={**turn, "input": "What next?"}, headers=auth()
    ).json()

    hero = first["output"].split(", ")[1].split(" was asked")[0]
    assert second["output"].startswith("Chapter 2.")
    assert f", {hero} now wondered" in second["output"]


def test_failed_run_keeps_question_only(client: TestClient) -> None:
    session_id = new_session(client, "flow_flaky01")["id"]

    client.post(
        "/v1/flows/flow_flaky01/run", json={"input": "Q", "session_id": session_id}, headers=auth()
    )

    page = history(client, session_id)
    assert [message["role"] for message in page["messages"]] == ["user"]
    assert page["total"] == 1


@pytest.mark.parametrize(
    ("flow_id", "session_id", "status", "reason"),
    [
        ("flow_abc123", "session_missing", 404, "not found"),
        ("flow_sql789", "session_def456", 400, "session belongs to another flow"),
        ("flow_abc123", "session_old999", 400, "session has ended"),
    ],
    ids=["unknown", "other-flow", "ended"],
)
def test_bad_session_is_an_error(
    client: TestClient, flow_id: str, session_id: str, status: int, reason: str
) -> None:
    body = {"input": "Hello", "session_id": session_id}

    for kind in ("run", "stream"):
        response = client.post(f"/v1/flows/{flow_id}/{kind}", json=body, headers=auth())

        assert response.status_code == status
        assert response.json()["error"]["details"] == {
            "field": "/session_id",
            "location": "body",
            "reason": reason,
        }
    assert client.get("/_mock/state").json()["runs"]["total"] == 0


def test_history_pages_with_stable_total(client: TestClient) -> None:
    session_id = new_session(client)["id"]
    for number in range(5):
        body = {"input": f"Question {number}", "session_id": session_id}
        client.post("/v1/flows/flow_abc123/run", json=body, headers=auth())
    everything = history(client, session_id)["messages"]

    pages = [history(client, session_id, f"?limit=4&offset={offset}") for offset in (0, 4, 8, 12)]

    assert [page["total"] for page in pages] == [10, 10, 10, 10]
    assert [(page["limit"], page["offset"]) for page in pages] == [(4, 0), (4, 4), (4, 8), (4, 12)]
    assert [message for page in pages for message in page["messages"]] == everything
    assert pages[3]["messages"] == []


def test_fixture_history_is_served(client: TestClient) -> None:
    page = history(client, "session_def456", "?limit=1&offset=1")

    assert page["total"] == 2
    assert page["messages"] == [
        {
            "id": "msg_002",
            "role": "assistant",
            "content": "How can I assist you today?",
            "timestamp": "2024-01-15T10:00:05Z",
        }
    ]


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_concurrent_turns_keep_history_whole(
    make_app: Callable[..., Starlette], tmp_path: Path, backend: str
) -> None:
    state = {"state_path": tmp_path / "state.db"} if backend == "sqlite" else {}
    app = make_app(stream_delay_ms=2, **state)
    inputs = [f"Concurrent question {number}" for number in range(8)]

    async def run_all() -> list[dict[str, Any]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
            calls = [
                client.post(
                    "/v1/flows/flow_abc123/run",
                    json={"input": text, "session_id": "session_123"},
                    headers=auth(),
                )
                for text in inputs
            ]
            return [response.json() for response in await asyncio.gather(*calls)]

    runs = asyncio.run(run_all())

    page = history(TestClient(app), "session_123", "?limit=1000")
    messages = page["messages"]
    assert page["total"] == 16
    assert sorted(m["content"] for m in messages if m["role"] == "user") == sorted(inputs)
    assert sorted(m["content"] for m in messages if m["role"] == "assistant") == sorted(
        run["output"] for run in runs
    )
    assert [m["timestamp"] for m in messages] == sorted(m["timestamp"] for m in messages)
    assert len({message["id"] for message in messages}) == 16
    positions = {message["content"]: index for index, message in enumerate(messages)}
    assert all(
        positions[run["output"]] > positions[text] for run, text in zip(runs, inputs, strict=True)
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"flow_id": "flow_abc123", "user_id": "\\ud800"}',
        b'{"flow_id": "flow_abc123", "metadata": {"\\udfff": 1}}',
        b'{"flow_id": "flow_abc123", "metadata": {"k": "x\\ud83d"}}',
    ],
    ids=["user-id", "metadata-key", "metadata-value"],
)
def test_lone_surrogate_session_is_not_stored(client: TestClient, body: bytes) -> None:
    before = client.get("/_mock/state").json()["sessions"]["total"]

    response = client.post(
        "/v1/sessions", content=body, headers={**auth(), "Content-Type": "application/json"}
    )

    after = client.get("/_mock/state").json()["sessions"]["total"]
    assert response.status_code == 400
    assert "surrogate" in response.json()["error"]["details"]["reason"]
    assert after == before


def test_other_workspace_cannot_read_history(client: TestClient) -> None:
    session = new_session(client)

    response = client.get(f"/v1/sessions/{session['id']}/history", headers=auth(ACME_TOKEN))

    assert response.status_code == 404
    assert response.json()["error"]["details"]["field"] == "session_id"


def test_other_workspace_cannot_read_fixture_session(client: TestClient) -> None:
    response = client.get("/v1/sessions/session_def456/history", headers=auth(ACME_TOKEN))

    assert response.status_code == 404


@pytest.mark.parametrize("route", ["run", "stream"])
def test_other_workspace_cannot_run_in_session(client: TestClient, route: str) -> None:
    session = new_session(client)
    body = {"input": "Hi", "session_id": session["id"]}

    response = client.post(f"/v1/flows/flow_abc123/{route}", json=body, headers=auth(ACME_TOKEN))

    assert response.status_code == 404
    assert response.json()["error"]["details"]["field"] == "/session_id"
    assert history(client, session["id"])["total"] == 0


def test_other_workspace_session_is_own_workspace(client: TestClient) -> None:
    body = {"flow_id": "flow_abc123"}
    created = client.post("/v1/sessions", json=body, headers=auth(ACME_TOKEN)).json()

    own = client.get(f"/v1/sessions/{created['id']}/history", headers=auth(ACME_TOKEN))
    other = client.get(f"/v1/sessions/{created['id']}/history", headers=auth())

    assert own.status_code == 200
    assert other.status_code == 404
