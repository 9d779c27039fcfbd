"""Rate limiting per token: counting headers, 429 with Retry-After, windows that move with time."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.testclient import TestClient

from mock_server.fixtures import TokenFixture
from mock_server.ratelimit import RateLimiter
from tests.conftest import ACME_TOKEN, FREE_TOKEN, PRO_TOKEN, LiveServer, auth

START = 1_700_000_000.0
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


class FakeClock:
    """A clock that moves only when a test moves it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limited(make_client: Callable[..., TestClient], clock: FakeClock) -> TestClient:
    """A client of an app whose rate-limit windows follow the fake clock."""
    return make_client(clock=clock)


def test_burst_past_free_tier_gets_429(limited: TestClient, clock: FakeClock) -> None:
    for _ in range(100):
        assert limited.get("/v1/flows", headers=auth(FREE_TOKEN)).status_code == 200
    clock.advance(12.4)

    response = limited.get("/v1/flows", headers=auth(FREE_TOKEN))

    assert response.status_code == 429
    body = response.json()
    assert body["error"]["code"] == "RATE_LIMITED"
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["X-RateLimit-Limit"] == "100"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.headers["X-RateLimit-Reset"] == str(int(START) + 60)
    assert response.headers["Retry-After"] == "48"
    assert body["error"]["details"] == {"limit": 100, "retry_after": 48}


def test_remaining_counts_down_one_by_one(limited: TestClient, clock: FakeClock) -> None:
    seen = []
    resets = set()

    for _ in range(5):
        response = limited.get("/v1/flows", headers=auth(FREE_TOKEN))
        seen.append(int(response.headers["X-RateLimit-Remaining"]))
        resets.add(int(response.headers["X-RateLimit-Reset"]))
        clock.advance(1)

    assert seen == [99, 98, 97, 96, 95]
    assert resets == {int(START) + 60}


def test_remaining_never_goes_below_zero(make_client: Callable[..., TestClient]) -> None:
    client = make_client(rate_limit="2/min")

    remaining = [
        client.get("/v1/flows", headers=auth()).headers["X-RateLimit-Remaining"] for _ in range(5)
    ]

    assert remaining == ["1", "0", "0", "0", "0"]


def test_window_recovers_with_time(limited: TestClient, clock: FakeClock) -> None:
    for _ in range(100):
        limited.get("/v1/flows", headers=auth(FREE_TOKEN))
    assert limited.get("/v1/flows", headers=auth(FREE_TOKEN)).status_code == 429
    clock.advance(60.5)

    response = limited.get("/v1/flows", headers=auth(FREE_TOKEN))

    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == "99"
    assert int(response.headers["X-RateLimit-Reset"]) > clock.now


def test_moving_window_frees_oldest_requests_first(
    make_client: Callable[..., TestClient], clock: FakeClock
) -> None:
    client = make_client(rate_limit="3/min", clock=clock)
    for _ in range(2):
        client.get("/v1/flows", headers=auth())
    clock.advance(30)
    client.get("/v1/flows", headers=auth())
    clock.advance(31)

    response = client.get("/v1/flows", headers=auth())

    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == "1"
    assert response.headers["X-RateLimit-Reset"] == str(int(START) + 30 + 60)


def test_rejected_requests_are_not_counted(
    make_client: Callable[..., TestClient], clock: FakeClock
) -> None:
    client = make_client(rate_limit="1/min", clock=clock)
    client.get("/v1/flows", headers=auth())
    for _ in range(3):
        clock.advance(10)
        client.get("/v1/flows", headers=auth())
    clock.advance(30.5)

    response = client.get("/v1/flows", headers=auth())

    assert response.status_code == 200


def test_retry_after_is_at_least_one_second(
    make_client: Callable[..., TestClient], clock: FakeClock
) -> None:
    client = make_client(rate_limit="1/min", clock=clock)
    client.get("/v1/flows", headers=auth())
    clock.advance(59.99)

    response = client.get("/v1/flows", headers=auth())

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"


def test_tokens_are_counted_separately(limited: TestClient) -> None:
    limited.get("/v1/flows", headers=auth(PRO_TOKEN))

    response = limited.get("/v1/flows", headers=auth(ACME_TOKEN))

    assert response.headers["X-RateLimit-Limit"] == "1000"
    assert response.headers["X-RateLimit-Remaining"] == "999"


def test_enterprise_limit_comes_from_fixture(limited: TestClient) -> None:
    response = limited.get("/v1/flows", headers=auth("bx_test_ent_00000000000000000003"))

    assert response.headers["X-RateLimit-Limit"] == "5000"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v1/flows?limit=0", None, 400),
        ("GET", "/v1/flows/flow_missing", None, 404),
        ("POST", "/v1/flows/flow_abc123/run", {"input": ""}, 400),
        ("GET", "/v1/nowhere", None, 404),
        ("DELETE", "/v1/flows", None, 405),
    ],
    ids=["invalid-query", "unknown-flow", "invalid-body", "unknown-route", "wrong-method"],
)
def test_errors_carry_rate_limit_headers(
    limited: TestClient, method: str, path: str, body: object, status: int
) -> None:
    response = limited.request(method, path, json=body, headers=auth())

    assert response.status_code == status
    for name in RATE_HEADERS:
        assert name in response.headers


def test_unknown_route_does_not_count(limited: TestClient) -> None:
    limited.get("/v1/nowhere", headers=auth())

    response = limited.get("/v1/flows", headers=auth())

    assert response.headers["X-RateLimit-Remaining"] == "999"


def test_unknown_token_has_no_rate_headers(limited: TestClient) -> None:
    response = limited.get("/v1/flows", headers=auth("bx_unknown_token_0000"))

    assert response.status_code == 401
    assert "X-RateLimit-Limit" not in response.headers


def test_rate_limit_off_sends_no_headers(make_client: Callable[..., TestClient]) -> None:
    client = make_client(rate_limit="off")

    statuses = {client.get("/v1/flows", headers=auth(FREE_TOKEN)).status_code for _ in range(120)}
    response = client.get("/v1/flows", headers=auth(FREE_TOKEN))

    assert statuses == {200}
    assert "X-RateLimit-Limit" not in response.headers


def test_fixed_rate_applies_to_every_tier(make_client: Callable[..., TestClient]) -> None:
    client = make_client(rate_limit="7/min")

    free = client.get("/v1/flows", headers=auth(FREE_TOKEN))
    enterprise = client.get("/v1/flows", headers=auth("bx_test_ent_00000000000000000003"))

    assert free.headers["X-RateLimit-Limit"] == "7"
    assert enterprise.headers["X-RateLimit-Limit"] == "7"


def test_reset_forgets_every_count(clock: FakeClock) -> None:
    token = TokenFixture(token="bx_test_unit_0001", name="unit", tier="free", workspace="ws")
    limiter = RateLimiter("2/min", clock)
    limiter.hit(token)
    limiter.hit(token)

    limiter.reset()
    state = limiter.hit(token)

    assert state is not None
    assert state.allowed
    assert state.remaining == 1


def test_peek_does_not_count(clock: FakeClock) -> None:
    token = TokenFixture(token="bx_test_unit_0001", name="unit", tier="free", workspace="ws")
    limiter = RateLimiter("tier", clock)
    limiter.hit(token)

    first = limiter.peek(token)
    second = limiter.peek(token)

    assert first == second
    assert second is not None
    assert second.remaining == 99


@pytest.mark.e2e
def test_serve_rate_limit_option_limits(live_server: Callable[..., LiveServer]) -> None:
    server = live_server("--rate-limit", "3/min", "--stream-delay-ms", "0")

    with httpx.Client(base_url=server.url, headers=auth(), timeout=5) as client:
        statuses = [client.get("/v1/flows").status_code for _ in range(4)]
        last = client.get("/v1/flows")

    assert statuses == [200, 200, 200, 429]
    assert last.headers["X-RateLimit-Limit"] == "3"
    assert int(last.headers["Retry-After"]) >= 1
    assert last.json()["error"]["code"] == "RATE_LIMITED"
