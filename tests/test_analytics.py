"""Usage analytics over HTTP: periods, buckets, totals, live runs, cost and durations."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import ACME_TOKEN, auth

BODY = {"input": "Where is my order?"}


def usage(client: TestClient, token: str | None = None, **query: str) -> dict[str, Any]:
    headers = auth(token) if token else auth()
    response = client.get("/v1/analytics/usage", params=query, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def tomorrow() -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()


@pytest.mark.parametrize("granularity", ["hour", "day", "week", "month"])
def test_metrics_are_sums_of_buckets(client: TestClient, granularity: str) -> None:
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=20)).date().isoformat()

    report = usage(client, start_date=start, end_date=today(), granularity=granularity)

    metrics, buckets = report["metrics"], report["daily_breakdown"]
    assert report["granularity"] == granularity
    assert metrics["total_runs"] == sum(bucket["runs"] for bucket in buckets)
    assert metrics["total_tokens"] == sum(bucket["tokens"] for bucket in buckets)
    assert metrics["cost"] == round(sum(bucket["cost"] for bucket in buckets), 4)
    assert metrics["successful_runs"] + metrics["failed_runs"] == metrics["total_runs"]
    assert metrics["failed_runs"] > 0
    assert metrics["total_runs"] > 0


def test_buckets_follow_granularity(client: TestClient) -> None:
    report = usage(
        client, start_date="2024-01-01", end_date="2024-01-03T02:00:00Z", granularity="hour"
    )

    dates = [bucket["date"] for bucket in report["daily_breakdown"]]
    assert len(dates) == 50
    assert dates[0] == "2024-01-01T00:00:00Z"
    assert dates[-1] == "2024-01-03T01:00:00Z"


def test_week_and_month_bucket_starts(client: TestClient) -> None:
    weeks = usage(client, start_date="2024-01-03", end_date="2024-01-20", granularity="week")
    months = usage(client, start_date="2024-01-15", end_date="2024-03-02", granularity="month")

    assert [b["date"] for b in weeks["daily_breakdown"]] == [
        "2024-01-01",
        "2024-01-08",
        "2024-01-15",
    ]
    assert [b["date"] for b in months["daily_breakdown"]] == [
        "2024-01-01",
        "2024-02-01",
        "2024-03-01",
    ]


@pytest.mark.parametrize(
    ("value", "start"),
    [
        ("2024-01-01", "2024-01-01T00:00:00Z"),
        ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
        ("2024-01-01T10:00:00+02:00", "2024-01-01T08:00:00Z"),
        ("2024-01-01T10:00:00.250-05:30", "2024-01-01T15:30:00.250Z"),
        ("2024-01-01t10:00:00z", "2024-01-01T10:00:00Z"),
        ("2023-12-31T23:59:60Z", "2024-01-01T00:00:00Z"),
    ],
    ids=["date", "utc", "offset", "fraction", "lower-case", "leap-second"],
)
def test_date_forms_are_accepted(client: TestClient, value: str, start: str) -> None:
    report = usage(client, start_date=value, end_date="2024-02-01")

    assert report["period"] == {"start": start, "end": "2024-02-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"start_date": "2024-01-01T10:00:00"}, "start_date"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"end_date": "2024-02-30"}, "end_date"),
        ({"start_date": "2024-03-01", "end_date": "2024-02-01"}, "end_date"),
        ({"start_date": "2999-01-01"}, "start_date"),
        ({"granularity": "year"}, "granularity"),
        (
            {"start_date": "2020-01-01", "end_date": "2024-01-01", "granularity": "hour"},
            "granularity",
        ),
    ],
    ids=["no-offset", "word", "no-such-day", "end-before-start", "future", "year", "too-many"],
)
def test_bad_period_names_parameter(client: TestClient, query: dict[str, str], field: str) -> None:
    response = client.get("/v1/analytics/usage", params=query, headers=auth())

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert error["details"]["field"] == field
    assert error["details"]["location"] == "query"
    assert field in error["message"]


def test_live_run_is_counted(client: TestClient) -> None:
    before = usage(client, start_date=today(), end_date=tomorrow(), flow_id="flow_sql789")

    ok = client.post("/v1/flows/flow_sql789/run", json=BODY, headers=auth()).json()
    after = usage(client, start_date=today(), end_date=tomorrow(), flow_id="flow_sql789")

    tokens = ok["usage"]["total_tokens"]
    assert before["metrics"]["total_runs"] == 0
    assert after["metrics"]["total_runs"] == 1
    assert after["metrics"]["successful_runs"] == 1
    assert after["metrics"]["total_tokens"] == tokens
    # flow_sql789 costs 0.004 USD per 1,000 tokens in fixtures/flows.yaml.
    assert after["metrics"]["cost"] == round(tokens * 0.004 / 1000, 4)


def test_failed_live_run_is_counted(client: TestClient) -> None:
    client.post("/v1/flows/flow_flaky01/run", json=BODY, headers=auth())

    report = usage(client, start_date=today(), end_date=tomorrow(), flow_id="flow_flaky01")

    assert report["metrics"]["total_runs"] == 1
    assert report["metrics"]["failed_runs"] == 1
    assert report["metrics"]["successful_runs"] == 0


def test_response_time_is_real_duration(make_client: Any) -> None:
    client = make_client(stream_delay_ms=5)
    runs = [
        client.post("/v1/flows/flow_cls321/run", json=BODY, headers=auth()).json() for _ in "ab"
    ]

    report = usage(client, start_date=today(), end_date=tomorrow(), flow_id="flow_cls321")

    durations = [
        (
            dt.datetime.fromisoformat(run["completed_at"])
            - dt.datetime.fromisoformat(run["created_at"])
        )
        for run in runs
    ]
    expected = sum(duration.total_seconds() for duration in durations) / 2
    assert report["metrics"]["avg_response_time"] == round(expected, 3)
    assert report["metrics"]["avg_response_time"] >= 0.005


def test_usage_is_per_workspace(client: TestClient) -> None:
    client.post("/v1/flows/flow_abc123/run", json=BODY, headers=auth(ACME_TOKEN))

    acme = usage(
        client, ACME_TOKEN, start_date="2020-01-01", end_date=tomorrow(), granularity="month"
    )
    demo_today = usage(client, start_date=today(), end_date=tomorrow(), flow_id="flow_abc123")

    assert acme["metrics"]["total_runs"] == 1
    assert demo_today["metrics"]["total_runs"] == 0


def test_default_period_is_last_thirty_days(client: TestClient) -> None:
    report = usage(client)

    start = dt.datetime.fromisoformat(report["period"]["start"])
    end = dt.datetime.fromisoformat(report["period"]["end"])
    assert end - start == dt.timedelta(days=30)
    assert report["granularity"] == "day"
    assert len(report["daily_breakdown"]) == 31
