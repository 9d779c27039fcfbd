"""The webhook receiver behind `broxi-mock webhooks listen`, in process and as a command."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from standardwebhooks.webhooks import Webhook
from starlette.testclient import TestClient

from broxi_mock.cli import main
from broxi_mock.receiver import Verdict, WebhookReceiver
from broxi_mock.spec import load_spec
from broxi_mock.webhook_contract import DEFAULT_SECRET, PayloadChecker
from tests.conftest import REPO_ROOT, LiveServer, auth, free_port, stop_server

EVENT_ID = "evt_0123456789abcdef01234567"


def session_event(event_id: str = EVENT_ID, **data: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "event": "session.created",
        "timestamp": "2024-01-15T10:30:05Z",
        "data": {
            "session_id": "session_1",
            "flow_id": "flow_abc123",
            "user_id": None,
            "status": "active",
            **data,
        },
    }


def signed(
    payload: Any, secret: str = DEFAULT_SECRET, age: float = 0
) -> tuple[bytes, dict[str, str]]:
    """Encode a payload and sign it as the mock does, `age` seconds in the past."""
    body = json.dumps(payload).encode()
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age)
    webhook_id = payload["id"] if isinstance(payload, dict) else EVENT_ID
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, moment, body),
    }
    return body, headers


@pytest.fixture
def receiver() -> WebhookReceiver:
    return WebhookReceiver(DEFAULT_SECRET, PayloadChecker(load_spec()))


@pytest.fixture
def post(receiver: WebhookReceiver) -> Iterator[Callable[[bytes, dict[str, str]], httpx.Response]]:
    with TestClient(receiver.app()) as client:
        yield lambda body, headers: client.post("/hooks", content=body, headers=headers)


def test_valid_delivery_is_counted(
    receiver: WebhookReceiver, post: Callable[[bytes, dict[str, str]], httpx.Response]
) -> None:
    response = post(*signed(session_event()))

    assert response.status_code == 200
    assert receiver.counts == {"valid": 1, "duplicate": 0, "invalid": 0}
    assert receiver.problem(expect=1) is None


def test_redelivered_event_counts_once(
    receiver: WebhookReceiver, post: Callable[[bytes, dict[str, str]], httpx.Response]
) -> None:
    post(*signed(session_event()))

    again = post(*signed(session_event()))

    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert receiver.counts == {"valid": 1, "duplicate": 1, "invalid": 0}


def test_changed_byte_is_rejected(
    receiver: WebhookReceiver, post: Callable[[bytes, dict[str, str]], httpx.Response]
) -> None:
    body, headers = signed(session_event())
    tampered = body.replace(b"flow_abc123", b"flow_abc124")

    response = post(tampered, headers)

    assert response.status_code == 401
    assert response.json()["detail"] == "signature rejected: No matching signature found"
    assert receiver.problem(expect=None) == "1 delivery(ies) were invalid"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            json.dumps(session_event(user_id="\ud800")).encode(),
            "body is not valid JSON text: a \\u escape encodes a lone UTF-16 surrogate",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "body is not valid JSON: nests too deep"),
    ],
    ids=["lone-surrogate", "deep-nesting"],
)
def test_unusable_signed_json_is_invalid(
    receiver: WebhookReceiver,
    post: Callable[[bytes, dict[str, str]], httpx.Response],
    body: bytes,
    detail: str,
) -> None:
    headers = signed_body(body)

    response = post(body, headers)

    assert response.status_code == 400
    assert response.json() == {"outcome": "invalid", "detail": detail}
    assert receiver.counts == {"valid": 0, "duplicate": 0, "invalid": 1}


def signed_body(body: bytes) -> dict[str, str]:
    moment = dt.datetime.now(dt.UTC)
    return {
        "content-type": "application/json",
        "webhook-id": EVENT_ID,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(DEFAULT_SECRET).sign(EVENT_ID, moment, body),
    }


def test_stale_timestamp_is_rejected(
    receiver: WebhookReceiver, post: Callable[[bytes, dict[str, str]], httpx.Response]
) -> None:
    response = post(*signed(session_event(), age=6 * 60))

    assert response.status_code == 401
    assert response.json()["detail"] == "signature rejected: Message timestamp too old"


def test_other_secret_is_rejected(
    receiver: WebhookReceiver, post: Callable[[bytes, dict[str, str]], httpx.Response]
) -> None:
    other = "whsec_" + "c2VwYXJhdGUtc2VjcmV0LWZvci1vbmUtZW5kcG9pbnQ="

    response = post(*signed(session_event(), secret=other))

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (session_event(status="ended"), 'payload /data/status: "active" was expected'),
        (session_event(reason="idle_timeout"), "payload /data: "),
        (
            {**session_event(), "event": "flow.run.paused"},
            "payload /event: unknown event "
            "'flow.run.paused' (expected one of flow.run.started, flow.run.completed, "
            "flow.run.failed, session.created, session.ended)",
        ),
        ({**session_event(), "extra": 1}, "payload /: Unevaluated properties are not allowed"),
    ],
    ids=["wrong-status", "reason-on-created", "unknown-event", "extra-field"],
)
def test_schema_invalid_payload_is_rejected(
    receiver: WebhookReceiver,
    post: Callable[[bytes, dict[str, str]], httpx.Response],
    payload: dict[str, Any],
    detail: str,
) -> None:
    response = post(*signed(payload))

    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)
    assert receiver.counts["invalid"] == 1


def test_id_differing_from_header_is_rejected(
    post: Callable[[bytes, dict[str, str]], httpx.Response],
) -> None:
    body, headers = signed(session_event())
    other_id = "evt_ffffffffffffffffffffffff"
    moment = dt.datetime.now(dt.UTC)
    headers.update(
        {
            "webhook-id": other_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": Webhook(DEFAULT_SECRET).sign(other_id, moment, body),
        }
    )

    response = post(body, headers)

    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"payload /id: {EVENT_ID!r} differs from webhook-id {other_id!r}"
    )


def test_verdict_line_names_event() -> None:
    verdict = Verdict("valid", EVENT_ID, "session.created", "session_id=session_1", 200)

    line = verdict.line()

    assert line == f"valid     session.created    {EVENT_ID}  session_id=session_1"


def test_listen_fails_without_expected_events() -> None:
    port = free_port()

    result = CliRunner().invoke(
        main, ["webhooks", "listen", "--port", str(port), "--expect", "1", "--timeout", "0.2"]
    )

    assert result.exit_code == 1
    assert "0 valid event(s), 0 redelivery(ies), 0 invalid delivery(ies)" in result.output
    assert "Error: expected 1 valid event(s), received 0" in result.output


def test_listen_rejects_bad_secret() -> None:
    result = CliRunner().invoke(main, ["webhooks", "listen", "--secret", "hunter2"])

    assert result.exit_code == 2
    assert "Invalid value for '--secret': secret must" in result.output


def test_serve_rejects_non_http_webhook() -> None:
    result = CliRunner().invoke(main, ["serve", "--webhook", "ftp://127.0.0.1/hooks"])

    assert result.exit_code == 2
    assert "'ftp://127.0.0.1/hooks' must use http or https (got scheme 'ftp')" in result.output


class Listener:
    """A `broxi-mock webhooks listen` process on a free port."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.log = tmp_path / f"listen-{self.port}.log"
        command = [
            sys.executable,
            "-m",
            "broxi_mock",
            "webhooks",
            "listen",
            "--port",
            str(self.port),
            *args,
        ]
        with self.log.open("w") as handle:
            self.process = subprocess.Popen(
                command,
                stdout=handle,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=REPO_ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self._wait_until_accepting(timeout=20)

    def _wait_until_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"webhooks listen exited early:\n{self.output()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"webhooks listen did not start within {timeout} s")

    def finish(self, timeout: float = 20) -> int:
        """Wait for the process to exit by itself and return its exit code."""
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def start_listener(tmp_path: Path) -> Iterator[Callable[..., Listener]]:
    listeners: list[Listener] = []

    def start(*args: str) -> Listener:
        listener = Listener(tmp_path, *args)
        listeners.append(listener)
        return listener

    yield start
    for listener in listeners:
        stop_server(listener.process)


def finished_delivery(server: LiveServer, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        listed = httpx.get(f"{server.url}/_mock/webhooks/deliveries").json()["deliveries"]
        if (listed and listed[0]["status"] != "pending") or time.monotonic() > deadline:
            return listed[0]  # type: ignore[no-any-return]
        time.sleep(0.05)


@pytest.mark.e2e
def test_listen_accepts_mock_deliveries(
    live_server: Callable[..., LiveServer], start_listener: Callable[..., Listener]
) -> None:
    listener = start_listener("--expect", "4", "--timeout", "20")
    server = live_server("--webhook", listener.url, "--stream-delay-ms", "0")
    session = httpx.post(
        f"{server.url}/v1/sessions", json={"flow_id": "flow_abc123"}, headers=auth()
    ).json()
    created = finished_delivery(server)
    httpx.post(f"{server.url}/_mock/webhooks/deliveries/{created['id']}/redeliver")
    httpx.post(
        f"{server.url}/v1/flows/flow_abc123/run",
        json={"input": "Hi", "session_id": session["id"]},
        headers=auth(),
    )
    httpx.post(f"{server.url}/_mock/sessions/{session['id']}/end")

    exit_code = listener.finish()

    output = listener.output()
    assert exit_code == 0, output
    assert created["status"] == "delivered"
    assert output.count("\nvalid ") == 4
    assert f"duplicate session.created    {created['event_id']}" in output
    assert "4 valid event(s), 1 redelivery(ies), 0 invalid delivery(ies)" in output


@pytest.mark.e2e
def test_listen_rejects_tampered_delivery(start_listener: Callable[..., Listener]) -> None:
    listener = start_listener("--expect", "1", "--timeout", "20")
    body, headers = signed(session_event())
    tampered = httpx.post(listener.url, content=body.replace(b"active", b"ended "), headers=headers)
    genuine = httpx.post(listener.url, content=body, headers=headers)

    exit_code = listener.finish()

    output = listener.output()
    assert tampered.status_code == 401
    assert genuine.status_code == 200
    assert exit_code == 1
    assert f"INVALID   -                  {EVENT_ID}  signature rejected" in output
    assert "Error: 1 delivery(ies) were invalid" in output
