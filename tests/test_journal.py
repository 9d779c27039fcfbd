"""The request journal at /_mock/requests: what clients sent and what was wrong with it."""

from __future__ import annotations

from collections.abc import Callable

import jsonschema_rs
from starlette.testclient import TestClient

from broxi_mock.spec import bundled_admin_spec_path, load_spec
from tests.conftest import auth

ADMIN_SPEC = load_spec(bundled_admin_spec_path())
JOURNAL_VALIDATOR = jsonschema_rs.validator_for(
    ADMIN_SPEC.schema_ref("#/components/schemas/RequestJournal"), validate_formats=True
)


def test_journal_records_request_facts(client: TestClient) -> None:
    sent = client.get("/v1/flows?limit=2", headers={**auth(), "X-Request-ID": "trace-1"})

    journal = client.get("/_mock/requests").json()

    assert sent.status_code == 200
    assert JOURNAL_VALIDATOR.is_valid(journal)
    entry = journal["requests"][0]
    assert entry["request_id"] == "trace-1"
    assert entry["method"] == "GET"
    assert entry["path"] == "/v1/flows"
    assert entry["query"] == "limit=2"
    assert entry["status"] == 200
    assert entry["operation_id"] == "listFlows"
    assert entry["token"] == "bx_tes..."
    assert entry["problems"] == []
    assert entry["duration_ms"] > 0


def test_journal_lists_validation_problems(client: TestClient) -> None:
    body = {"input": "", "surprise": True}
    client.post("/v1/flows/flow_abc123/run", json=body, headers=auth())

    entry = client.get("/_mock/requests").json()["requests"][0]

    assert entry["status"] == 400
    assert entry["error_code"] == "INVALID_REQUEST"
    assert sorted(problem["field"] for problem in entry["problems"]) == ["/input", "/surprise"]
    assert {problem["location"] for problem in entry["problems"]} == {"body"}


def test_journal_records_auth_failure(client: TestClient) -> None:
    client.get("/v1/flows", headers={"Authorization": "Bearer bx_live_secret_token_123456"})

    entry = client.get("/_mock/requests").json()["requests"][0]

    assert entry["status"] == 401
    assert entry["token"] == "bx_liv..."
    assert entry["problems"] == [
        {"field": "Authorization", "location": "header", "reason": "unknown token"}
    ]


def test_journal_records_unknown_route(client: TestClient) -> None:
    client.get("/v1/nowhere", headers=auth())

    entry = client.get("/_mock/requests").json()["requests"][0]

    assert entry["status"] == 404
    assert entry["operation_id"] is None
    assert entry["problems"] == [{"field": "path", "location": "path", "reason": "no such route"}]


def test_journal_records_prefer_header(client: TestClient) -> None:
    client.get("/v1/flows", headers={**auth(), "Prefer": "code=503"})

    entry = client.get("/_mock/requests").json()["requests"][0]

    assert entry["status"] == 503
    assert entry["prefer"] == "code=503"


def test_journal_lists_newest_first(client: TestClient) -> None:
    for flow_id in ("flow_abc123", "flow_sum456", "flow_sql789"):
        client.get(f"/v1/flows/{flow_id}", headers=auth())

    entries = client.get("/_mock/requests", params={"limit": 2}).json()["requests"]

    assert [entry["path"] for entry in entries] == [
        "/v1/flows/flow_sql789",
        "/v1/flows/flow_sum456",
    ]
    assert entries[0]["sequence"] == entries[1]["sequence"] + 1


def test_journal_keeps_only_latest(make_client: Callable[..., TestClient]) -> None:
    client = make_client(journal_size=3)
    for _ in range(5):
        client.get("/v1/flows", headers=auth())

    journal = client.get("/_mock/requests").json()

    assert [entry["sequence"] for entry in journal["requests"]] == [5, 4, 3]
    assert journal["size"] == 3
    assert journal["recorded"] == 5


def test_journal_size_zero_records_nothing(make_client: Callable[..., TestClient]) -> None:
    client = make_client(journal_size=0)
    client.get("/v1/flows", headers=auth())

    journal = client.get("/_mock/requests").json()

    assert journal["requests"] == []
    assert journal["recorded"] == 1


def test_admin_requests_are_not_journaled(client: TestClient) -> None:
    client.get("/_mock/openapi.json")
    client.get("/_mock/requests")

    journal = client.get("/_mock/requests").json()

    assert journal["requests"] == []


def test_clearing_empties_the_journal(client: TestClient) -> None:
    client.get("/v1/flows", headers=auth())

    cleared = client.delete("/_mock/requests")
    journal = client.get("/_mock/requests").json()

    assert cleared.status_code == 204
    assert journal["requests"] == []
    assert journal["recorded"] == 1


def test_invalid_limit_is_400(client: TestClient) -> None:
    response = client.get("/_mock/requests", params={"limit": 0})

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "limit"
