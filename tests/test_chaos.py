"""Chaos settings: seeded latency and failures per route that replay exactly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from broxi_mock.errors import ConfigError
from broxi_mock.spec import load_spec
from mock_server.chaos import ChaosRule, compile_chaos, parse_failure_option, parse_latency_option
from tests.conftest import auth

FLAKY_FLOWS = ChaosRule("test", "listFlows", latency_ms=(0, 3), failure_rate=0.5)


def outcomes(client: TestClient, count: int = 30) -> list[tuple[int, Any]]:
    """Send `count` list requests; return each status with the chaos the journal recorded."""
    statuses = [client.get("/v1/flows", headers=auth()).status_code for _ in range(count)]
    journal = client.get("/_mock/requests", params={"limit": count}).json()["requests"]
    draws = [entry["chaos"] for entry in reversed(journal)]
    return list(zip(statuses, draws, strict=True))


def test_fixed_seed_repeats_exactly(make_client: Callable[..., TestClient]) -> None:
    first = make_client(seed=11, chaos=(FLAKY_FLOWS,), rate_limit="off")
    second = make_client(seed=11, chaos=(FLAKY_FLOWS,), rate_limit="off")

    one, two = outcomes(first), outcomes(second)

    assert one == two
    assert {status for status, _ in one} == {200, 503}


def test_other_seed_gives_other_run(make_client: Callable[..., TestClient]) -> None:
    first = make_client(seed=11, chaos=(FLAKY_FLOWS,), rate_limit="off")
    second = make_client(seed=12, chaos=(FLAKY_FLOWS,), rate_limit="off")

    assert outcomes(first) != outcomes(second)


def test_routes_draw_independently(make_client: Callable[..., TestClient]) -> None:
    rules = (FLAKY_FLOWS, ChaosRule("test", "getFlow", failure_rate=0.5))
    quiet = make_client(seed=3, chaos=rules, rate_limit="off")
    busy = make_client(seed=3, chaos=rules, rate_limit="off")
    for _ in range(7):
        busy.get("/v1/flows/flow_abc123", headers=auth())

    assert outcomes(quiet) == outcomes(busy)


def test_failure_uses_configured_status(make_client: Callable[..., TestClient]) -> None:
    rule = ChaosRule("test", "getFlow", failure_rate=1.0, failure_status=500)
    client = make_client(chaos=(rule,))

    response = client.get("/v1/flows/flow_abc123", headers=auth())
    other = client.get("/v1/flows", headers=auth())

    assert response.status_code == 500
    assert response.json()["error"] == {
        "code": "INTERNAL_ERROR",
        "message": "The server failed while handling the request.",
        "details": {"reason": "injected by the chaos settings"},
    }
    assert response.headers["X-RateLimit-Remaining"] == "999"
    assert other.status_code == 200


def test_latency_delays_the_answer(make_client: Callable[..., TestClient]) -> None:
    client = make_client(chaos=(ChaosRule("test", None, latency_ms=(60, 80)),))

    started = time.perf_counter()
    response = client.get("/v1/flows", headers=auth())
    elapsed = time.perf_counter() - started

    entry = client.get("/_mock/requests").json()["requests"][0]
    assert response.status_code == 200
    assert elapsed >= 0.06
    assert 60 <= entry["chaos"]["latency_ms"] <= 80
    assert entry["duration_ms"] >= 60


def test_route_rule_beats_general_rule(make_client: Callable[..., TestClient]) -> None:
    rules = (
        ChaosRule("test", "getFlow", failure_rate=0.0),
        ChaosRule("test", None, failure_rate=1.0),
    )
    client = make_client(chaos=rules)

    assert client.get("/v1/flows/flow_abc123", headers=auth()).status_code == 200
    assert client.get("/v1/flows", headers=auth()).status_code == 503


def test_route_can_be_named_by_path(make_client: Callable[..., TestClient]) -> None:
    rule = ChaosRule("test", "GET /v1/flows/{flow_id}", failure_rate=1.0)
    client = make_client(chaos=(rule,))

    assert client.get("/v1/flows/flow_abc123", headers=auth()).status_code == 503


def test_chaos_spares_admin_routes(make_client: Callable[..., TestClient]) -> None:
    client = make_client(chaos=(ChaosRule("test", None, failure_rate=1.0),))

    assert client.get("/_mock/openapi.json").status_code == 200


def test_prefer_wins_over_chaos_failure(make_client: Callable[..., TestClient]) -> None:
    client = make_client(chaos=(ChaosRule("test", None, failure_rate=1.0),))

    response = client.get("/v1/flows", headers={**auth(), "Prefer": "code=500"})

    assert response.status_code == 500


def test_unknown_route_is_rejected() -> None:
    rule = ChaosRule("--latency 'runFlows=5'", "runFlows", latency_ms=(5, 5))

    with pytest.raises(ConfigError) as caught:
        compile_chaos(load_spec(), (rule,), 0)

    assert str(caught.value).startswith("--latency 'runFlows=5': unknown route 'runFlows'")
    assert "'runFlow'" in str(caught.value)


def test_undocumented_failure_status_is_rejected() -> None:
    rule = ChaosRule(
        "chaos.yaml: chaos.routes.listFlows", "listFlows", failure_rate=0.5, failure_status=404
    )

    with pytest.raises(ConfigError) as caught:
        compile_chaos(load_spec(), (rule,), 0)

    assert str(caught.value) == (
        "chaos.yaml: chaos.routes.listFlows: status 404 is not documented for listFlows "
        "(expected one of [400, 401, 403, 406, 429, 500, 503])"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("250", ChaosRule("--latency '250'", None, latency_ms=(250, 250))),
        ("100-400", ChaosRule("--latency '100-400'", None, latency_ms=(100, 400))),
        ("runFlow=5-9", ChaosRule("--latency 'runFlow=5-9'", "runFlow", latency_ms=(5, 9))),
    ],
    ids=["fixed", "range", "one-route"],
)
def test_latency_option_parses(value: str, expected: ChaosRule) -> None:
    assert parse_latency_option(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.1", ChaosRule("--failure-rate '0.1'", None, failure_rate=0.1, failure_status=503)),
        (
            "getRun=.5:500",
            ChaosRule(
                "--failure-rate 'getRun=.5:500'", "getRun", failure_rate=0.5, failure_status=500
            ),
        ),
    ],
    ids=["rate", "route-and-status"],
)
def test_failure_option_parses(value: str, expected: ChaosRule) -> None:
    assert parse_failure_option(value) == expected


@pytest.mark.parametrize(
    ("parse", "value", "message"),
    [
        (parse_latency_option, "fast", "--latency 'fast': expected [ROUTE=]MIN[-MAX]"),
        (parse_latency_option, "90-10", "--latency '90-10': latency 90-10 ms is invalid"),
        (parse_failure_option, "1.5", "--failure-rate '1.5': failure rate 1.5 is invalid"),
        (parse_failure_option, "half", "--failure-rate 'half': expected [ROUTE=]RATE[:STATUS]"),
    ],
    ids=["latency-word", "latency-reversed", "rate-above-one", "rate-word"],
)
def test_bad_option_names_itself(
    parse: Callable[[str], ChaosRule], value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(value)

    assert str(caught.value).startswith(message)
