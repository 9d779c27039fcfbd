"""CORS: preflights without a token, exposed headers, and enveloped rejections."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from broxi_mock.errors import ConfigError
from mock_server import MockConfig
from mock_server.cors import origin_regex
from tests.conftest import auth


def preflight(client: TestClient, path: str, origin: str, method: str = "POST") -> object:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, prefer",
    }
    return client.options(path, headers=headers)


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:3000",
        "http://127.0.0.1:5173",
        "http://localhost",
        "https://localhost:8443",
    ],
)
def test_localhost_preflight_succeeds(client: TestClient, origin: str) -> None:
    response = preflight(client, "/v1/flows/flow_abc123/run", origin)

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "authorization, content-type, prefer"
    assert response.headers["X-Request-ID"].startswith("req_")


@pytest.mark.parametrize(
    "path",
    ["/v1/flows", "/v1/runs/run_1", "/v1/sessions", "/v1/analytics/usage", "/_mock/requests"],
)
def test_every_route_answers_preflight(client: TestClient, path: str) -> None:
    response = preflight(client, path, "http://localhost:3000", "GET")

    assert response.status_code == 204


def test_foreign_preflight_gets_envelope(client: TestClient) -> None:
    response = preflight(client, "/v1/flows", "https://evil.example")

    body = response.json()
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    assert "Access-Control-Allow-Origin" not in response.headers
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["error"]["code"] == "FORBIDDEN"
    assert body["error"]["details"]["field"] == "Origin"
    assert body["error"]["details"]["reason"] == "origin not allowed"
    assert "http://localhost:*" in body["error"]["details"]["allowed"]


def test_unserved_method_preflight_gets_envelope(client: TestClient) -> None:
    response = preflight(client, "/v1/flows", "http://localhost:3000", "PATCH")

    body = response.json()
    assert response.status_code == 405
    assert body["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert body["error"]["details"]["field"] == "Access-Control-Request-Method"
    assert body["error"]["details"]["allowed"] == ["DELETE", "GET", "HEAD", "OPTIONS", "POST"]


@pytest.mark.parametrize(
    "origin",
    ["http://localhost.evil.example", "http://localhost:3000@evil.example", "null"],
    ids=["longer-host", "userinfo", "null"],
)
def test_lookalike_origin_is_rejected(client: TestClient, origin: str) -> None:
    response = preflight(client, "/v1/flows", origin)

    assert response.status_code == 403


def test_allowed_origin_sees_exposed_headers(client: TestClient) -> None:
    response = client.get("/v1/flows", headers={**auth(), "Origin": "http://localhost:3000"})

    exposed = {
        name.strip() for name in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert exposed == {
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "Retry-After",
        "X-Request-ID",
    }


def test_errors_carry_cors_headers(client: TestClient) -> None:
    response = client.get("/v1/flows", headers={"Origin": "http://localhost:3000"})

    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


def test_configured_origins_replace_defaults(make_client: Callable[..., TestClient]) -> None:
    client = make_client(cors_origins=("https://app.example.com", "https://*.preview.example.com"))

    exact = preflight(client, "/v1/flows", "https://app.example.com")
    wildcard = preflight(client, "/v1/flows", "https://pr-42.preview.example.com")
    local = preflight(client, "/v1/flows", "http://localhost:3000")

    assert exact.status_code == 204
    assert wildcard.status_code == 204
    assert local.status_code == 403


def test_star_allows_every_origin(make_client: Callable[..., TestClient]) -> None:
    client = make_client(cors_origins=("*",))

    response = preflight(client, "/v1/flows", "https://anywhere.example")

    assert response.status_code == 204


@pytest.mark.parametrize(
    "origin",
    ["localhost:3000", "http://localhost:3000/", "http://localhost/app", ""],
    ids=["no-scheme", "trailing-slash", "path", "empty"],
)
def test_invalid_origin_is_rejected(origin: str) -> None:
    with pytest.raises(ConfigError) as caught:
        MockConfig(cors_origins=(origin,))

    assert str(caught.value).startswith(f"cors origin {origin!r} is invalid")


def test_origin_regex_escapes_dots() -> None:
    pattern = origin_regex(["https://app.example.com"])

    assert pattern == r"(?:https://app\.example\.com)"
