"""The optional `webhooks` check: listen, trigger a run and a session, and verify what arrives.

The receiver of `broxi-mock webhooks listen` judges each delivery: the Standard Webhooks
signature first, then the spec's payload schema. This module adds the listening thread, the
requests that trigger events, and the matching of events to those requests.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from schemathesis import CheckContext, Response

from broxi_mock.receiver import Verdict, WebhookReceiver
from broxi_mock.webhook_contract import PayloadChecker
from contract_tests.client import curl_command
from contract_tests.contract import Contract
from contract_tests.exchange import ApiCase, KitCheck, read_exchange
from contract_tests.failures import Problem, WebhookFailure, raise_problems
from contract_tests.settings import current

MAX_BODY_BYTES = 1024 * 1024
POLL_SECONDS = 0.1
VERDICT_TITLES = {
    401: "Webhook signature does not verify",
    400: "Webhook payload breaks its schema",
    413: "Webhook body is too large",
}


@dataclass(frozen=True)
class Delivery:
    """One POST the listener got, and the receiver's verdict on it."""

    verdict: Verdict
    body: bytes


class WebhookListener:
    """An HTTP server on host:port that judges every POST with `receiver` and keeps it."""

    def __init__(self, host: str, port: int, receiver: WebhookReceiver) -> None:
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(size, MAX_BODY_BYTES))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with listener._lock:
                    verdict = receiver.receive(body, headers)
                    listener.deliveries.append(Delivery(verdict, body))
                self.send_response(verdict.status_code)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookListener:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)


def parse_listen(value: str) -> tuple[str, int]:
    """Split "host:port" into its parts, raising ValueError when it is not that."""
    host, separator, port = value.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port (expected e.g. '127.0.0.1:4011')")
    return host.strip("[]"), int(port)


class WebhookCheck(KitCheck):
    """After the run: trigger a run and a session and check the signed events that arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.target: tuple[Contract, str, str] | None = None

    def after_response(self, ctx: CheckContext, response: Response, case: ApiCase) -> bool | None:
        exchange = read_exchange(case, response)
        if self.target is None and exchange.is_success and exchange.authorization:
            self.target = (exchange.contract, exchange.base_url, exchange.authorization)
        return None

    def after_run(self, ctx: CheckContext) -> None:
        settings = current()
        if settings.webhook_listen is None or settings.webhook_secret is None:
            return
        if self.target is None:
            expected = "a successful response during the run, to learn where and how to call"
            raise_problems(
                WebhookFailure,
                None,
                [Problem("Nothing to trigger webhooks with", expected, "none")],
            )
            return
        contract, base_url, authorization = self.target
        flow_id, problems = self._published_flow(contract, base_url, authorization)
        if flow_id is not None:
            host, port = parse_listen(settings.webhook_listen)
            receiver = WebhookReceiver(settings.webhook_secret, PayloadChecker(contract.spec))
            with WebhookListener(host, port, receiver) as listener:
                events, problems = self._trigger(contract, base_url, authorization, flow_id)
                problems += self._await(listener, events, settings.webhook_wait)
        raise_problems(WebhookFailure, None, problems)

    def _published_flow(
        self, contract: Contract, base_url: str, authorization: str
    ) -> tuple[str | None, list[Problem]]:
        url = contract.url(base_url, "listFlows")
        if url is None:
            return None, []
        url += "?status=published&limit=1"
        try:
            reply = self.client.get(url, authorization)
            flows = reply.json().get("flows") if reply.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            flows = None
        if flows and isinstance(flows[0], dict) and isinstance(flows[0].get("id"), str):
            return flows[0]["id"], []
        expected = "GET /flows?status=published listing a flow to run"
        return None, [
            Problem(
                "No published flow to trigger webhooks with",
                expected,
                "none",
                curl_command("GET", url),
            )
        ]

    def _trigger(
        self, contract: Contract, base_url: str, authorization: str, flow_id: str
    ) -> tuple[dict[str, tuple[str, str]], list[Problem]]:
        """Create a session and a run; return the events each should cause, by event name."""
        expected: dict[str, tuple[str, str]] = {}
        for operation, body, key, events in (
            ("createSession", {"flow_id": flow_id}, "session_id", ("session.created",)),
            (
                "runFlow",
                {"input": "Hello from the contract kit"},
                "run_id",
                ("flow.run.started", "flow.run.completed"),
            ),
        ):
            url = contract.url(base_url, operation, flow_id=flow_id)
            if url is None:
                continue
            try:
                reply = self.client.send("POST", url, authorization, body)
            except httpx.HTTPError as exc:
                return expected, [Problem("Follow-up request failed", "a response", str(exc))]
            if reply.status_code >= 300 or not isinstance(reply.json(), dict):
                curl = curl_command("POST", url, json.dumps(body))
                return expected, [
                    Problem(
                        "Webhook trigger failed",
                        f"2xx from {operation}",
                        str(reply.status_code),
                        curl,
                    )
                ]
            for event in events:
                expected[event] = (key, str(reply.json().get("id")))
        return expected, []

    def _await(
        self, listener: WebhookListener, expected: dict[str, tuple[str, str]], wait: float
    ) -> list[Problem]:
        """Wait until every expected event arrived or `wait` seconds passed, then judge."""
        deadline = time.monotonic() + wait
        while True:
            deliveries = listener.snapshot()
            problems, arrived = judge_deliveries(deliveries, expected)
            if set(expected) <= arrived or time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
        for event in sorted(set(expected) - arrived):
            key, value = expected[event]
            expected_text = f"{event} with {key} {value!r} within {wait:g} s"
            got = f"{len(deliveries)} deliveries, none of them a valid {event} for it"
            problems.append(Problem("Webhook did not arrive", expected_text, got))
        return problems


def judge_deliveries(
    deliveries: list[Delivery], expected: dict[str, tuple[str, str]]
) -> tuple[list[Problem], set[str]]:
    """Turn invalid verdicts into problems; return them and the expected events that arrived."""
    problems: list[Problem] = []
    arrived: set[str] = set()
    for delivery in deliveries:
        verdict = delivery.verdict
        if verdict.outcome == "invalid":
            title = VERDICT_TITLES.get(verdict.status_code, "Webhook delivery is invalid")
            expected_text = "a Standard Webhooks delivery whose payload matches its schema"
            got = f"{verdict.event or 'unknown event'} {verdict.webhook_id or ''}: {verdict.detail}"
            problems.append(Problem(title, expected_text, got))
            continue
        data = json.loads(delivery.body).get("data") or {}
        key, value = expected.get(str(verdict.event), ("", ""))
        if key and data.get(key) == value:
            arrived.add(str(verdict.event))
    return problems, arrived
