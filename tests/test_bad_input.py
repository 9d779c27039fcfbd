"""Every class of bad input gets the error envelope with a precise status, code and details."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import PRO_TOKEN, auth

RUN = "/v1/flows/flow_abc123/run"
JSON = {"Content-Type": "application/json"}

# (id, method, path, headers, body bytes or None, status, code, details field, reason part)
CASES: list[tuple[str, str, str, dict[str, str], bytes | None, int, str, str, str]] = [
    ("missing-field", "POST", RUN, JSON, b"{}", 400, "INVALID_REQUEST", "/input", "required"),
    ("wrong-type", "POST", RUN, JSON, b'{"input": 5}', 400, "INVALID_REQUEST", "/input", "type"),
    (
        "unknown-field",
        "POST",
        RUN,
        JSON,
        b'{"input": "a", "x": 1}',
        400,
        "INVALID_REQUEST",
        "/x",
        "unexpected",
    ),
    (
        "empty-input",
        "POST",
        RUN,
        JSON,
        b'{"input": ""}',
        400,
        "INVALID_REQUEST",
        "/input",
        "shorter",
    ),
    ("malformed-json", "POST", RUN, JSON, b'{"input": ', 400, "INVALID_REQUEST", "/", "line 1"),
    (
        "truncated-json",
        "POST",
        RUN,
        JSON,
        b'{"input": "hel',
        400,
        "INVALID_REQUEST",
        "/",
        "Unterminated",
    ),
    ("empty-body", "POST", RUN, JSON, b"", 400, "INVALID_REQUEST", "/", "empty"),
    ("json-array", "POST", RUN, JSON, b'[{"input": "a"}]', 400, "INVALID_REQUEST", "/", "array"),
    ("json-scalar", "POST", RUN, JSON, b'"hello"', 400, "INVALID_REQUEST", "/", "string"),
    (
        "invalid-utf8",
        "POST",
        RUN,
        JSON,
        b'{"input": "\xff\xfe"}',
        400,
        "INVALID_REQUEST",
        "/",
        "UTF-8",
    ),
    (
        "lone-surrogate",
        "POST",
        RUN,
        JSON,
        b'{"input": "\\ud800"}',
        400,
        "INVALID_REQUEST",
        "/",
        "surrogate",
    ),
    ("nan", "POST", RUN, JSON, b'{"input": NaN}', 400, "INVALID_REQUEST", "/", "NaN"),
    (
        "infinity",
        "POST",
        RUN,
        JSON,
        b'{"input": "a", "stream": Infinity}',
        400,
        "INVALID_REQUEST",
        "/",
        "no NaN or Infinity",
    ),
    (
        "minus-infinity",
        "POST",
        RUN,
        JSON,
        b'{"input": -Infinity}',
        400,
        "INVALID_REQUEST",
        "/",
        "-Infinity",
    ),
    (
        "huge-integer",
        "POST",
        RUN,
        JSON,
        b'{"input": ' + b"9" * 5000 + b"}",
        400,
        "INVALID_REQUEST",
        "/",
        "5000 digits",
    ),
    (
        "float-overflow",
        "POST",
        RUN,
        JSON,
        b'{"input": 1e999}',
        400,
        "INVALID_REQUEST",
        "/",
        "too large",
    ),
    (
        "text-plain",
        "POST",
        RUN,
        {"Content-Type": "text/plain"},
        b'{"input": "a"}',
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "Content-Type",
        "unsupported",
    ),
    (
        "form",
        "POST",
        RUN,
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"input=a",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "Content-Type",
        "unsupported",
    ),
    (
        "latin1-charset",
        "POST",
        RUN,
        {"Content-Type": "application/json; charset=latin-1"},
        b'{"input": "a"}',
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "Content-Type",
        "unsupported",
    ),
    (
        "gzip-body",
        "POST",
        RUN,
        {**JSON, "Content-Encoding": "gzip"},
        gzip.compress(b'{"input": "a"}'),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "Content-Encoding",
        "content coding",
    ),
    (
        "br-body",
        "POST",
        "/v1/sessions",
        {**JSON, "Content-Encoding": "br"},
        b'{"flow_id": "flow_abc123"}',
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "Content-Encoding",
        "content coding",
    ),
    (
        "limit-zero",
        "GET",
        "/v1/flows?limit=0",
        {},
        None,
        400,
        "INVALID_REQUEST",
        "limit",
        "minimum",
    ),
    (
        "limit-too-big",
        "GET",
        "/v1/flows?limit=101",
        {},
        None,
        400,
        "INVALID_REQUEST",
        "limit",
        "maximum",
    ),
    (
        "limit-not-integer",
        "GET",
        "/v1/flows?limit=ten",
        {},
        None,
        400,
        "INVALID_REQUEST",
        "limit",
        "integer",
    ),
    (
        "offset-negative",
        "GET",
        "/v1/flows?offset=-1",
        {},
        None,
        400,
        "INVALID_REQUEST",
        "offset",
        "minimum",
    ),
    (
        "status-not-enum",
        "GET",
        "/v1/flows?status=archived",
        {},
        None,
        400,
        "INVALID_REQUEST",
        "status",
        "archived",
    ),
    (
        "bad-path-id",
        "GET",
        "/v1/runs/run%20with%20space",
        {},
        None,
        400,
        "INVALID_REQUEST",
        "run_id",
        "does not match",
    ),
    (
        "granularity",
        "GET",
        "/v1/analytics/usage?granularity=year",
        {},
        None,
        400,
        "INVALID_REQUEST",
        "granularity",
        "year",
    ),
    (
        "bad-date",
        "GET",
        "/v1/analytics/usage?start_date=yesterday",
        {},
        None,
        400,
        "INVALID_REQUEST",
        "start_date",
        "RFC 3339 date-time with an offset (such as 2024-01-31T23:59:59Z) or a date YYYY-MM-DD",
    ),
    (
        "limit-huge",
        "GET",
        "/v1/flows?limit=" + "9" * 5000,
        {},
        None,
        400,
        "INVALID_REQUEST",
        "limit",
        "out of range (expected between 1 and 100)",
    ),
    (
        "status-repeated",
        "GET",
        "/v1/flows?status=published&status=draft",
        {},
        None,
        400,
        "INVALID_REQUEST",
        "status",
        "given more than once",
    ),
    (
        "end-before-start",
        "GET",
        "/v1/analytics/usage?start_date=2024-02-01&end_date=2024-01-01",
        {},
        None,
        400,
        "INVALID_REQUEST",
        "end_date",
        "before",
    ),
    (
        "not-acceptable",
        "GET",
        "/v1/flows",
        {"Accept": "text/html"},
        None,
        406,
        "NOT_ACCEPTABLE",
        "Accept",
        "acceptable",
    ),
    (
        "stream-wants-json",
        "POST",
        "/v1/flows/flow_abc123/stream",
        {**JSON, "Accept": "application/json"},
        b'{"input": "a"}',
        406,
        "NOT_ACCEPTABLE",
        "Accept",
        "acceptable",
    ),
    (
        "unknown-flow",
        "POST",
        "/v1/flows/flow_missing/run",
        JSON,
        b'{"input": "a"}',
        404,
        "NOT_FOUND",
        "flow_id",
        "not found",
    ),
    (
        "unknown-run",
        "GET",
        "/v1/runs/run_missing",
        {},
        None,
        404,
        "NOT_FOUND",
        "run_id",
        "not found",
    ),
    (
        "unknown-session",
        "GET",
        "/v1/sessions/session_missing/history",
        {},
        None,
        404,
        "NOT_FOUND",
        "session_id",
        "not found",
    ),
    (
        "unknown-run-session",
        "POST",
        RUN,
        JSON,
        b'{"input": "a", "session_id": "session_x"}',
        404,
        "NOT_FOUND",
        "/session_id",
        "not found",
    ),
    (
        "session-of-other-flow",
        "POST",
        "/v1/flows/flow_sql789/run",
        JSON,
        b'{"input": "a", "session_id": "session_def456"}',
        400,
        "INVALID_REQUEST",
        "/session_id",
        "another flow",
    ),
    ("unknown-route", "GET", "/v1/widgets", {}, None, 404, "NOT_FOUND", "path", "no such route"),
    ("trailing-slash", "GET", "/v1/flows/", {}, None, 404, "NOT_FOUND", "path", "no such route"),
    (
        "wrong-method",
        "DELETE",
        "/v1/flows",
        {},
        None,
        405,
        "METHOD_NOT_ALLOWED",
        "method",
        "not allowed",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "code", "field", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_gets_envelope(
    client: TestClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    code: str,
    field: str,
    reason: str,
) -> None:
    response = client.request(method, path, headers={**auth(), **headers}, content=body)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    envelope = response.json()
    assert set(envelope) == {"error", "request_id"}
    assert envelope["request_id"] == response.headers["X-Request-ID"]
    assert envelope["error"]["code"] == code
    assert envelope["error"]["message"]
    assert envelope["error"]["details"]["field"] == field
    assert reason.lower() in envelope["error"]["details"]["reason"].lower()


def test_oversized_body_is_413(make_client: Any) -> None:
    client = make_client(max_body_bytes=64)
    body = b'{"input": "' + b"a" * 100 + b'"}'

    response = client.post(RUN, content=body, headers={**auth(), **JSON})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert response.json()["error"]["details"]["max_bytes"] == 64


def test_identity_content_encoding_is_accepted(client: TestClient) -> None:
    headers = {**auth(), **JSON, "Content-Encoding": "identity"}

    response = client.post(RUN, content=b'{"input": "hi"}', headers=headers)

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/flows?status=archived", ["published", "draft"]),
        ("/v1/analytics/usage?granularity=year", ["hour", "day", "week", "month"]),
    ],
    ids=["status", "granularity"],
)
def test_enum_error_lists_every_allowed_value(
    client: TestClient, path: str, allowed: list[str]
) -> None:
    response = client.get(path, headers=auth())

    details = response.json()["error"]["details"]
    assert details["allowed"] == allowed
    assert "candidates" not in details["reason"]


def test_json_with_utf8_charset_is_accepted(client: TestClient) -> None:
    headers = {**auth(), "Content-Type": "application/json; charset=UTF-8"}

    response = client.post(RUN, content=b'{"input": "hi"}', headers=headers)

    assert response.status_code == 200


def test_wrong_method_lists_allowed(client: TestClient) -> None:
    response = client.put("/v1/flows/flow_abc123/run", headers=auth())

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["error"]["details"]["location"] == "method"


def test_several_problems_are_all_listed(client: TestClient) -> None:
    body = b'{"input": 1, "stream": "yes", "extra": true}'

    response = client.post(RUN, content=body, headers={**auth(), **JSON})

    errors = response.json()["error"]["details"]["errors"]
    assert response.status_code == 400
    assert {error["field"] for error in errors} == {"/input", "/stream", "/extra"}


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "unsupported scheme"),
        ("Bearer", "empty token"),
        ("Bearer    ", "empty token"),
        ("Bearer not-a-real-token", "unknown token"),
    ],
    ids=["missing", "basic", "empty-bearer", "blank-bearer", "unknown"],
)
def test_bad_token_is_401(client: TestClient, header: str | None, reason: str) -> None:
    headers = {"Authorization": header} if header is not None else {}

    response = client.get("/v1/flows", headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    assert response.json()["error"]["details"]["reason"] == reason
    assert "not-a-real-token" not in response.text


def test_bare_token_is_not_echoed(client: TestClient) -> None:
    response = client.get("/v1/flows", headers={"Authorization": PRO_TOKEN})

    assert response.status_code == 401
    assert response.json()["error"]["details"]["reason"] == "unsupported scheme"
    assert PRO_TOKEN not in response.text
    assert PRO_TOKEN[:12] not in response.text


def test_long_accept_is_capped_in_message(client: TestClient) -> None:
    accept = "text/" + "x" * 5000

    response = client.get("/v1/flows", headers={**auth(), "Accept": accept})

    assert response.status_code == 406
    assert len(response.json()["error"]["message"]) < 300


def test_long_content_type_is_capped_in_message(client: TestClient) -> None:
    headers = {**auth(), "Content-Type": "text/" + "x" * 5000}

    response = client.post(RUN, content=b'{"input": "a"}', headers=headers)

    assert response.status_code == 415
    assert len(response.json()["error"]["message"]) < 300


def test_head_works_on_get_routes(client: TestClient) -> None:
    response = client.head("/v1/flows", headers=auth())

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["X-RateLimit-Limit"] == "1000"


def test_malformed_request_id_is_replaced(client: TestClient) -> None:
    response = client.get("/v1/flows", headers={**auth(), "X-Request-ID": "bad id\twith tab"})

    assert response.headers["X-Request-ID"].startswith("req_")


def test_read_only_token_cannot_run(client: TestClient) -> None:
    from tests.conftest import READ_ONLY_TOKEN

    response = client.post(RUN, json={"input": "a"}, headers=auth(READ_ONLY_TOKEN))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"


def test_other_workspace_draft_is_403(client: TestClient) -> None:
    from tests.conftest import ACME_TOKEN

    response = client.get("/v1/flows/flow_drf111", headers=auth(ACME_TOKEN))

    assert response.status_code == 403
    assert response.json()["error"]["details"]["field"] == "flow_id"


def test_escaped_emoji_is_accepted(client: TestClient) -> None:
    body = b'{"input": "\\ud83d\\ude00 hello"}'

    response = client.post(RUN, content=body, headers={**auth(), **JSON})

    assert response.status_code == 200
