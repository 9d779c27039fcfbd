"""Basic behaviour of the app factory: routes from the spec, headers, errors."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.conftest import auth


def test_list_flows_returns_page(client: TestClient) -> None:
    response = client.get("/v1/flows", headers=auth())

    assert response.status_code == 200
    body = response.json()
    assert body["limit"] == 20
    assert body["offset"] == 0
    assert body["total"] == len(body["flows"])
    assert {flow["status"] for flow in body["flows"]} == {"published", "draft"}


def test_every_response_has_request_id(client: TestClient) -> None:
    ok = client.get("/v1/flows", headers=auth())
    missing = client.get("/v1/nowhere", headers=auth())

    assert ok.headers["X-Request-ID"].startswith("req_")
    assert missing.headers["X-Request-ID"] == missing.json()["request_id"]


def test_client_request_id_is_echoed(client: TestClient) -> None:
    response = client.get("/v1/flows", headers={**auth(), "X-Request-ID": "trace-42"})

    assert response.headers["X-Request-ID"] == "trace-42"


def test_run_is_retrievable(client: TestClient) -> None:
    created = client.post("/v1/flows/flow_abc123/run", json={"input": "Hello"}, headers=auth())
    fetched = client.get(f"/v1/runs/{created.json()['id']}", headers=auth())

    assert created.status_code == 200
    assert fetched.status_code == 200
    assert fetched.json() == created.json()
