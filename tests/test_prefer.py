"""The Prefer header: every documented status and named example on demand, and its 400s."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jsonschema_rs
import pytest
from starlette.testclient import TestClient

from broxi_mock.spec import Spec, load_spec
from mock_server import MockConfig, create_app
from mock_server.prefer import ResponseCatalog, parse_prefer
from tests.conftest import ACME_TOKEN, READ_ONLY_TOKEN, auth

SPEC = load_spec()
# One valid request per operation; a new operation in the spec must get one here.
REQUESTS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "runFlow": ("POST", "/v1/flows/flow_abc123/run", {"input": "Hello"}),
    "streamFlow": ("POST", "/v1/flows/flow_abc123/stream", {"input": "Hello"}),
    "getRun": ("GET", "/v1/runs/run_12345", None),
    "listFlows": ("GET", "/v1/flows", None),
    "getFlow": ("GET", "/v1/flows/flow_abc123", None),
    "createSession": ("POST", "/v1/sessions", {"flow_id": "flow_abc123"}),
    "getSessionHistory": ("GET", "/v1/sessions/session_def456/history", None),
    "getUsage": ("GET", "/v1/analytics/usage", None),
}
CATALOGS = {
    operation.operation_id: ResponseCatalog(SPEC, operation) for operation in SPEC.operations()
}
STATUS_CASES = [
    (operation_id, status)
    for operation_id, catalog in CATALOGS.items()
    for status in catalog.responses
]
STATUS_OF_CODE = SPEC.document["components"]["schemas"]["ErrorCode"]["x-status-codes"]
CODE_OF_STATUS = {status: code for code, status in STATUS_OF_CODE.items()}
EXAMPLE_CASES = [
    (operation_id, status, name)
    for operation_id, catalog in CATALOGS.items()
    for status, response in catalog.responses.items()
    for name in response.examples
]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """One app for the whole module, because Prefer responses do not change state."""
    app = create_app(MockConfig(stream_delay_ms=0, rate_limit="off"))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def send(client: TestClient, operation_id: str, prefer: str | None, **extra: Any) -> Any:
    method, path, body = REQUESTS[operation_id]
    headers = {**auth(), **({"Prefer": prefer} if prefer is not None else {})}
    return client.request(method, path, json=body, headers=headers, **extra)


def schema_validator(spec: Spec, schema: Any) -> Any:
    return jsonschema_rs.validator_for(spec.schema_of(schema), validate_formats=True)


ERROR_VALIDATOR = schema_validator(SPEC, {"$ref": "#/components/schemas/ErrorResponse"})


def test_every_operation_has_a_request() -> None:
    assert set(REQUESTS) == set(CATALOGS)


@pytest.mark.parametrize(("operation_id", "status"), STATUS_CASES, ids=str)
def test_prefer_code_picks_documented_status(
    client: TestClient, operation_id: str, status: int
) -> None:
    response = send(client, operation_id, f"code={status}")

    assert response.status_code == status
    if status < 400:
        return
    body = response.json()
    assert ERROR_VALIDATOR.is_valid(body)
    assert body["error"]["code"] == CODE_OF_STATUS[status]
    assert body["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize(("operation_id", "status", "name"), EXAMPLE_CASES, ids=str)
def test_prefer_example_picks_named_example(
    client: TestClient, operation_id: str, status: int, name: str
) -> None:
    example = CATALOGS[operation_id].responses[status].examples[name]

    response = send(client, operation_id, f"code={status}, example={name}")

    assert response.status_code == status
    if status < 400:
        assert response.json() == example
    else:
        assert response.json()["error"] == example["error"]
        assert response.json()["request_id"] == response.headers["X-Request-ID"]


def test_example_alone_uses_success_response(client: TestClient) -> None:
    response = send(client, "getRun", "example=failed")

    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert response.json()["error"]["code"] == "FLOW_EXECUTION_FAILED"


def test_unknown_example_lists_valid_names(client: TestClient) -> None:
    response = send(client, "getRun", "example=exploded")

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "INVALID_REQUEST",
        "message": "Prefer example='exploded' is not a named example of the 200 response of "
        "getRun; its examples: 'completed', 'running', 'failed'.",
        "details": {
            "field": "Prefer",
            "location": "header",
            "reason": "unknown example 'exploded'",
            "allowed": ["completed", "running", "failed"],
        },
    }


def test_undocumented_code_lists_valid_codes(client: TestClient) -> None:
    response = send(client, "listFlows", "code=418")

    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert details["reason"] == "undocumented status 418"
    assert details["allowed"] == [200, 400, 401, 403, 406, 429, 500, 503]


@pytest.mark.parametrize(
    ("prefer", "reason"),
    [
        ("code=abc", "invalid status code 'abc'"),
        ("code=5033", "invalid status code '5033'"),
        ("dynamic=maybe", "invalid dynamic value 'maybe'"),
        ("example=completed, dynamic=true", "example and dynamic=true conflict"),
    ],
    ids=["code-not-number", "code-too-long", "dynamic-not-boolean", "example-and-dynamic"],
)
def test_invalid_prefer_value_is_400(client: TestClient, prefer: str, reason: str) -> None:
    response = send(client, "getRun", prefer)

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "Prefer"
    assert response.json()["error"]["details"]["reason"] == reason


def test_invalid_code_lists_documented_codes(client: TestClient) -> None:
    response = send(client, "listFlows", "code=abc")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["allowed"] == [
        200,
        400,
        401,
        403,
        406,
        429,
        500,
        503,
    ]


def test_non_ascii_example_is_quoted_as_sent(client: TestClient) -> None:
    headers = {**auth(), "Prefer": "example=café".encode()}

    response = client.get("/v1/runs/run_12345", headers=headers)

    assert response.status_code == 400
    assert "'café'" in response.json()["error"]["message"]


def test_unknown_preferences_are_ignored(client: TestClient) -> None:
    response = send(client, "getFlow", "return=minimal, respond-async")

    assert response.status_code == 200
    assert response.json()["id"] == "flow_abc123"


def test_prefer_affects_only_its_request(client: TestClient) -> None:
    failed = send(client, "getFlow", "code=503")

    after = send(client, "getFlow", None)

    assert failed.status_code == 503
    assert after.status_code == 200
    assert after.json()["id"] == "flow_abc123"


@pytest.mark.parametrize("operation_id", [o for o in REQUESTS if o != "streamFlow"])
def test_dynamic_body_matches_schema(client: TestClient, operation_id: str) -> None:
    success = CATALOGS[operation_id].responses[CATALOGS[operation_id].success_status or 200]
    validator = schema_validator(SPEC, success.schema)

    bodies = [send(client, operation_id, "dynamic=true").json() for _ in range(3)]

    for body in bodies:
        assert validator.is_valid(body)
    assert bodies[0] != bodies[1]


def test_dynamic_bodies_repeat_with_same_seed(make_client: Callable[..., TestClient]) -> None:
    first, second = make_client(seed=5), make_client(seed=5)

    one = [send(first, "getFlow", "dynamic=true").json() for _ in range(2)]
    two = [send(second, "getFlow", "dynamic=true").json() for _ in range(2)]

    assert one == two


def test_dynamic_error_keeps_code_and_request_id(client: TestClient) -> None:
    response = send(client, "getFlow", "code=500, dynamic=true")

    body = response.json()
    assert response.status_code == 500
    assert ERROR_VALIDATOR.is_valid(body)
    assert body["error"]["code"] == "INTERNAL_ERROR"
    assert body["request_id"] == response.headers["X-Request-ID"]


def test_prefer_429_has_retry_after(make_client: Callable[..., TestClient]) -> None:
    client = make_client()

    response = send(client, "listFlows", "code=429")

    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["X-RateLimit-Limit"] == "1000"
    assert response.json()["error"]["details"]["limit"] == 1000


def test_prefer_401_has_challenge(client: TestClient) -> None:
    response = send(client, "listFlows", "code=401")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_prefer_error_skips_body_validation(client: TestClient) -> None:
    headers = {**auth(), "Prefer": "code=503"}

    response = client.post("/v1/flows/flow_abc123/run", json={"wrong": 1}, headers=headers)

    assert response.status_code == 503


def test_prefer_success_still_validates_request(client: TestClient) -> None:
    headers = {**auth(), "Prefer": "example=completed"}

    response = client.post("/v1/flows/flow_abc123/run", json={"input": ""}, headers=headers)

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "/input"


def test_prefer_does_not_bypass_authentication(client: TestClient) -> None:
    response = client.get("/v1/flows", headers={"Prefer": "code=200"})

    assert response.status_code == 401


def test_prefer_success_leaves_state_unchanged(client: TestClient) -> None:
    preferred = send(client, "runFlow", "example=completed")

    fetched = client.get(f"/v1/runs/{preferred.json()['id']}", headers=auth())

    assert preferred.status_code == 200
    assert fetched.status_code == 404


def test_prefer_on_stream_keeps_the_stream(client: TestClient) -> None:
    response = send(client, "streamFlow", "code=200")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert '"type":"end"' in response.text


def test_prefer_on_stream_body_keeps_the_stream(client: TestClient) -> None:
    headers = {**auth(), "Prefer": "example=completed"}
    body = {"input": "Hello", "stream": True}

    response = client.post("/v1/flows/flow_abc123/run", json=body, headers=headers)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")


def test_admin_routes_ignore_prefer(client: TestClient) -> None:
    response = client.get("/_mock/openapi.json", headers={"Prefer": "code=503"})

    assert response.status_code == 200


def test_read_only_token_cannot_run_flow(client: TestClient) -> None:
    response = client.post(
        "/v1/flows/flow_abc123/run", json={"input": "Hi"}, headers=auth(READ_ONLY_TOKEN)
    )

    assert response.status_code == 403
    assert response.json()["error"]["details"]["reason"] == "read-only token"


def test_other_workspace_cannot_read_draft(client: TestClient) -> None:
    response = client.get("/v1/flows/flow_drf111", headers=auth(ACME_TOKEN))

    assert response.status_code == 403
    assert response.json()["error"]["details"]["reason"] == "draft flow of another workspace"


def test_parse_prefer_reads_quoted_values() -> None:
    preference = parse_prefer('code=404; lang=en, example="unknownFlow"')

    assert preference is not None
    assert preference.code == 404
    assert preference.example == "unknownFlow"
    assert preference.dynamic is False
