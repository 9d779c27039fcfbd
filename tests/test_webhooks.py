"""Webhook delivery to real receivers on 127.0.0.1: signatures, payloads, retries, ordering."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.testclient import TestClient

from broxi_mock.spec import load_spec
from broxi_mock.webhook_contract import DEFAULT_SECRET, PayloadChecker
from mock_server.webhook_settings import EndpointSettings, WebhookSettings
from mock_server.webhooks import backoff_delay, loggable_url
from tests.conftest import LiveServer, ReceivedRequest, RecordingReceiver, auth, free_port

FAST_RETRIES: dict[str, Any] = {
    "initial_retry_seconds": 0.01,
    "max_retry_seconds": 0.05,
    "shutdown_grace_seconds": 0.2,
}
OWN_SECRET = "whsec_" + "c2VwYXJhdGUtc2VjcmV0LWZvci1vbmUtZW5kcG9pbnQ="
ALL_EVENTS = {
    "flow.run.started",
    "flow.run.completed",
    "flow.run.failed",
    "session.created",
    "session.ended",
}


@pytest.fixture
def start_mock(make_app: Callable[..., Starlette]) -> Iterator[Callable[..., TestClient]]:
    """Start in-process mocks whose lifespan runs, so that webhook delivery is on."""
    with ExitStack() as stack:

        def start(*urls: str, config: dict[str, Any] | None = None, **settings: Any) -> TestClient:
            webhooks = WebhookSettings(
                endpoints=[EndpointSettings(url=url) for url in urls],
                **{**FAST_RETRIES, **settings},
            )
            app = make_app(webhooks=webhooks, **(config or {}))
            client = TestClient(app, raise_server_exceptions=False)
            return stack.enter_context(client)

        yield start


@pytest.fixture
def webhook_log() -> Iterator[list[str]]:
    """Collect the messages of the webhook logger, whatever logging configuration is active."""
    messages: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    webhook_logger = logging.getLogger("broxi_mock.webhooks")
    webhook_logger.addHandler(handler)
    level = webhook_logger.level
    webhook_logger.setLevel(logging.DEBUG)
    yield messages
    webhook_logger.setLevel(level)
    webhook_logger.removeHandler(handler)


@pytest.fixture(scope="module")
def checker() -> PayloadChecker:
    return PayloadChecker(load_spec())


def finished_deliveries(client: TestClient, count: int, timeout: float = 10.0) -> list[Any]:
    """Wait until at least `count` deliveries exist and none is pending; oldest first."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get("/_mock/webhooks/deliveries", params={"limit": 1000}).json()
        deliveries = body["deliveries"]
        done = all(delivery["status"] != "pending" for delivery in deliveries)
        if (len(deliveries) >= count and done) or time.monotonic() > deadline:
            return list(reversed(deliveries))
        time.sleep(0.02)


def create_session(client: TestClient) -> str:
    response = client.post("/v1/sessions", json={"flow_id": "flow_abc123"}, headers=auth())
    assert response.status_code == 201
    return str(response.json()["id"])


def payload_of(request: ReceivedRequest) -> Any:
    return json.loads(request.body)


def test_every_event_type_is_signed_and_valid(
    start_mock: Callable[..., TestClient],
    make_receiver: Callable[..., RecordingReceiver],
    checker: PayloadChecker,
) -> None:
    receiver = make_receiver()
    client = start_mock(receiver.url)
    session_id = create_session(client)
    client.post(
        "/v1/flows/flow_abc123/run", json={"input": "Hi", "session_id": session_id}, headers=auth()
    )
    client.post("/v1/flows/flow_flaky01/stream", json={"input": "Research"}, headers=auth())
    client.post(f"/_mock/sessions/{session_id}/end")

    assert receiver.wait_until(lambda: len(receiver.requests) >= 6)

    verifier = Webhook(DEFAULT_SECRET)
    for request in receiver.requests:
        payload = verifier.verify(request.body, request.headers)
        assert checker.check(payload) == []
        assert payload["id"] == request.headers["webhook-id"]
        assert request.headers["content-type"] == "application/json"
    assert {payload_of(request)["event"] for request in receiver.requests} == ALL_EVENTS


def test_run_payloads_carry_run_result(
    start_mock: Callable[..., TestClient], make_receiver: Callable[..., RecordingReceiver]
) -> None:
    receiver = make_receiver()
    client = start_mock(receiver.url)

    run = client.post("/v1/flows/flow_abc123/run", json={"input": "Hi"}, headers=auth()).json()

    assert receiver.wait_until(lambda: len(receiver.requests) >= 2)
    completed = next(
        payload_of(r) for r in receiver.requests if payload_of(r)["event"] == "flow.run.completed"
    )
    assert completed["data"] == {
        "run_id": run["id"],
        "flow_id": "flow_abc123",
        "session_id": None,
        "status": "completed",
        "output": run["output"],
        "usage": run["usage"],
    }


def test_receiver_failing_twice_gets_third_attempt(
    start_mock: Callable[..., TestClient], make_receiver: Callable[..., RecordingReceiver]
) -> None:
    receiver = make_receiver(answer=lambda request, attempt: 500 if attempt <= 2 else 204)
    client = start_mock(receiver.url)

    create_session(client)

    [delivery] = finished_deliveries(client, 1)
    assert delivery["status"] == "delivered"
    assert [attempt["status_code"] for attempt in delivery["attempts"]] == [500, 500, 204]
    assert [attempt["attempt"] for attempt in delivery["attempts"]] == [1, 2, 3]
    assert len(receiver.requests) == 3
    assert {request.headers["webhook-id"] for request in receiver.requests} == {
        delivery["event_id"]
    }
    assert len({request.body for request in receiver.requests}) == 1
    for request in receiver.requests:
        Webhook(DEFAULT_SECRET).verify(request.body, request.headers)


def test_silent_receiver_leaves_failed_record(
    start_mock: Callable[..., TestClient], make_receiver: Callable[..., RecordingReceiver]
) -> None:
    receiver = make_receiver(hold=True)
    client = start_mock(receiver.url, read_timeout_seconds=0.2, max_attempts=2)

    create_session(client)

    [delivery] = finished_deliveries(client, 1)
    assert delivery["status"] == "failed"
    assert delivery["error"] == (
        "gave up after 2 attempt(s) (max_attempts); last error: read timed out after 0.2 s"
    )
    assert [attempt["error"] for attempt in delivery["attempts"]] == [
        "read timed out after 0.2 s",
        "read timed out after 0.2 s",
    ]
    assert [attempt["status_code"] for attempt in delivery["attempts"]] == [None, None]


def test_api_answers_while_receiver_blocks(
    make_app: Callable[..., Starlette],
    make_receiver: Callable[..., RecordingReceiver],
    webhook_log: list[str],
) -> None:
    receiver = make_receiver(hold=True)
    settings = WebhookSettings(
        endpoints=[EndpointSettings(url=receiver.url)],
        read_timeout_seconds=60,
        shutdown_grace_seconds=0.2,
    )
    app = make_app(webhooks=settings)

    with TestClient(app) as client:
        create_session(client)
        assert receiver.wait_until(lambda: receiver.held_count == 1)
        run = client.post("/v1/flows/flow_abc123/run", json={"input": "Hi"}, headers=auth())
        listed = client.get("/_mock/webhooks/deliveries").json()
        nothing_answered = receiver.requests == []

    assert run.status_code == 200
    assert nothing_answered
    assert {delivery["status"] for delivery in listed["deliveries"]} == {"pending"}
    assert "Shutting down with 3 webhook delivery(ies) not delivered." in webhook_log
    assert sum(message.startswith("Not delivered: evt_") for message in webhook_log) == 3


def test_events_of_each_run_arrive_in_order(
    start_mock: Callable[..., TestClient], make_receiver: Callable[..., RecordingReceiver]
) -> None:
    jitter = random.Random(7)

    def answer(request: ReceivedRequest, attempt: int) -> int:
        # Every started event fails once, so a later completed event could overtake it.
        time.sleep(jitter.uniform(0, 0.02))
        return 500 if payload_of(request)["event"] == "flow.run.started" and attempt == 1 else 204

    receiver = make_receiver(answer=answer)
    client = start_mock(receiver.url)
    runs = 12

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(
                lambda index: client.post(
                    "/v1/flows/flow_abc123/run", json={"input": f"Q{index}"}, headers=auth()
                ),
                range(runs),
            )
        )

    assert {result.status_code for result in results} == {200}
    assert receiver.wait_until(lambda: len(receiver.succeeded()) >= 2 * runs)
    arrivals: dict[str, list[str]] = {}
    for request in receiver.requests:
        payload = payload_of(request)
        arrivals.setdefault(payload["data"]["run_id"], []).append(payload["event"])
    expected = ["flow.run.started", "flow.run.started", "flow.run.completed"]
    assert {run_id: events == expected for run_id, events in arrivals.items()} == {
        result.json()["id"]: True for result in results
    }
    assert receiver.max_in_flight > 1


def test_redelivery_repeats_event_id(
    start_mock: Callable[..., TestClient], make_receiver: Callable[..., RecordingReceiver]
) -> None:
    receiver = make_receiver()
    client = start_mock(receiver.url)
    create_session(client)
    [original] = finished_deliveries(client, 1)

    response = client.post(f"/_mock/webhooks/deliveries/{original['id']}/redeliver")

    assert response.status_code == 202
    assert response.json()["redelivery_of"] == original["id"]
    assert response.json()["event_id"] == original["event_id"]
    assert receiver.wait_until(lambda: len(receiver.requests) == 2)
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


def test_redirect_is_not_followed(
    start_mock: Callable[..., TestClient], make_receiver: Callable[..., RecordingReceiver]
) -> None:
    receiver = make_receiver(answer=lambda request, attempt: 302)
    client = start_mock(receiver.url, max_attempts=2)

    create_session(client)

    [delivery] = finished_deliveries(client, 1)
    assert delivery["status"] == "failed"
    assert delivery["attempts"][0]["error"] == "HTTP 302: redirect to '/elsewhere' not followed"
    assert {request.path for request in receiver.requests} == {"/hooks"}


def test_retry_window_bounds_attempts(
    start_mock: Callable[..., TestClient], make_receiver: Callable[..., RecordingReceiver]
) -> None:
    receiver = make_receiver(answer=lambda request, attempt: 503)
    client = start_mock(
        receiver.url,
        max_attempts=100,
        initial_retry_seconds=0.05,
        max_retry_seconds=10,
        retry_window_seconds=0.3,
    )

    create_session(client)

    [delivery] = finished_deliveries(client, 1)
    assert delivery["status"] == "failed"
    assert "past the 0.3 s retry window; last error: HTTP 503" in delivery["error"]
    assert 2 <= len(delivery["attempts"]) < 10


def test_unreachable_receiver_is_failed(start_mock: Callable[..., TestClient]) -> None:
    client = start_mock(f"http://127.0.0.1:{free_port()}/hooks", max_attempts=2)

    create_session(client)

    [delivery] = finished_deliveries(client, 1)
    assert delivery["status"] == "failed"
    assert delivery["attempts"][0]["error"].startswith("connection failed: ")


def test_removed_endpoint_stops_retrying(
    start_mock: Callable[..., TestClient], make_receiver: Callable[..., RecordingReceiver]
) -> None:
    receiver = make_receiver(answer=lambda request, attempt: 500)
    client = start_mock(
        receiver.url, max_attempts=100, initial_retry_seconds=0.2, max_retry_seconds=0.2
    )
    endpoint_id = client.get("/_mock/webhooks").json()["endpoints"][0]["id"]
    create_session(client)
    assert receiver.wait_until(lambda: len(receiver.requests) >= 1)

    removed = client.delete(f"/_mock/webhooks/{endpoint_id}")

    assert removed.status_code == 204
    [delivery] = finished_deliveries(client, 1)
    assert delivery["status"] == "failed"
    assert delivery["error"] == "the endpoint was removed before delivery"


def test_full_queue_fails_new_deliveries(
    start_mock: Callable[..., TestClient], make_receiver: Callable[..., RecordingReceiver]
) -> None:
    receiver = make_receiver(hold=True)
    client = start_mock(receiver.url, max_pending=1)

    create_session(client)
    create_session(client)

    listed = client.get("/_mock/webhooks/deliveries", params={"status": "failed"}).json()
    assert listed["total"] == 1
    assert listed["deliveries"][0]["error"] == "the delivery queue is full (max_pending is 1)"


def test_delivery_list_keeps_latest_finished(
    start_mock: Callable[..., TestClient], make_receiver: Callable[..., RecordingReceiver]
) -> None:
    receiver = make_receiver()
    client = start_mock(receiver.url, max_deliveries=3)

    session_ids = [create_session(client) for _ in range(5)]
    assert receiver.wait_until(lambda: len(receiver.requests) == 5)

    listed = finished_deliveries(client, 3)
    assert len(listed) == 3
    event_ids = {
        payload_of(request)["data"]["session_id"]: payload_of(request)["id"]
        for request in receiver.requests
    }
    kept_ids = [delivery["event_id"] for delivery in listed]
    assert kept_ids == [event_ids[session_id] for session_id in session_ids[2:]]


def test_endpoint_filter_and_own_secret(
    start_mock: Callable[..., TestClient], make_receiver: Callable[..., RecordingReceiver]
) -> None:
    receiver = make_receiver()
    client = start_mock()
    body = {"url": receiver.url, "events": ["flow.run.completed"], "secret": OWN_SECRET}
    assert client.post("/_mock/webhooks", json=body).status_code == 201

    create_session(client)
    client.post("/v1/flows/flow_abc123/run", json={"input": "Hi"}, headers=auth())

    [delivery] = finished_deliveries(client, 1)
    assert delivery["event"] == "flow.run.completed"
    [request] = receiver.requests
    assert Webhook(OWN_SECRET).verify(request.body, request.headers)["event"] == (
        "flow.run.completed"
    )


def test_pending_delivery_cannot_be_redelivered(
    start_mock: Callable[..., TestClient], make_receiver: Callable[..., RecordingReceiver]
) -> None:
    receiver = make_receiver(hold=True)
    client = start_mock(receiver.url)
    create_session(client)
    [pending] = client.get("/_mock/webhooks/deliveries").json()["deliveries"]

    response = client.post(f"/_mock/webhooks/deliveries/{pending['id']}/redeliver")

    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        f"Webhook delivery {pending['id']!r} is still pending."
    )


@pytest.mark.parametrize("number", range(1, 9))
def test_backoff_doubles_with_jitter(number: int) -> None:
    settings = WebhookSettings(initial_retry_seconds=1, max_retry_seconds=60)
    base = min(60, 2 ** (number - 1))

    delays = [backoff_delay(settings, number, random.Random(seed)) for seed in range(50)]

    assert min(delays) >= base / 2
    assert max(delays) <= base
    assert len(set(delays)) > 1


def test_backoff_honours_retry_after_up_to_cap() -> None:
    settings = WebhookSettings(initial_retry_seconds=1, max_retry_seconds=30)

    requested = backoff_delay(settings, 1, random.Random(0), retry_after=12)
    capped = backoff_delay(settings, 1, random.Random(0), retry_after=3600)

    assert requested == 12
    assert capped == 30


def test_logged_url_hides_credentials() -> None:
    url = "https://user:pa55@127.0.0.1:8443/hooks?token=abc"

    assert loggable_url(url) == "https://127.0.0.1:8443/hooks"


@pytest.mark.e2e
def test_disconnected_stream_sends_failed_event(
    live_server: Callable[..., LiveServer], make_receiver: Callable[..., RecordingReceiver]
) -> None:
    receiver = make_receiver()
    server = live_server("--webhook", receiver.url, "--stream-delay-ms", "200")
    url = f"{server.url}/v1/flows/flow_abc123/stream"

    with httpx.stream("POST", url, json={"input": "Hi"}, headers=auth(), timeout=10) as stream:
        next(line for line in stream.iter_lines() if line.startswith("data:"))

    assert receiver.wait_until(lambda: len(receiver.succeeded()) >= 2)
    started, failed = (payload_of(request) for request in receiver.requests[:2])
    assert started["event"] == "flow.run.started"
    assert failed["event"] == "flow.run.failed"
    assert failed["data"]["run_id"] == started["data"]["run_id"]
    assert failed["data"]["error"]["code"] == "CLIENT_DISCONNECTED"
