"""The optional `webhooks` check: listen, trigger a run and a session, and verify what arrives.

NOTE: this is a minimal receiver (one thread, Standard Webhooks signatures, the spec's payload
schemas). The `broxi-mock webhooks listen` receiver does the same job with more detail; the kit
should switch to it once both live in the same release.
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
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from contract_tests.client import curl_command
from contract_tests.contract import Contract, excerpt
from contract_tests.exchange import ApiCase, KitCheck, read_exchange
from contract_tests.failures import Problem, WebhookFailure, raise_problems
from contract_tests.settings import current

MAX_BODY_BYTES = 1024 * 1024
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver got."""

    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """An HTTP server on host:port that keeps every POST it gets and answers 204."""

    def __init__(self, host: str, port: int) -> None:
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(size, MAX_BODY_BYTES))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    receiver.deliveries.append(Delivery(headers, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
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


def delivery_problems(
    contract: Contract, secret: str, delivery: Delivery
) -> tuple[Any, list[Problem]]:
    """Verify a delivery's signature and its payload against the spec; return the payload."""
    try:
        Webhook(secret).verify(delivery.body, delivery.headers)
    except WebhookVerificationError as exc:
        got = f"{exc} (webhook-id {delivery.headers.get('webhook-id')!r})"
        return None, [
            Problem("Webhook signature does not verify", "a valid Standard Webhooks signature", got)
        ]
    try:
        payload = json.loads(delivery.body)
    except ValueError:
        return None, [Problem("Webhook body is not JSON", "a JSON payload", excerpt(delivery.body))]
    event = payload.get("event") if isinstance(payload, dict) else None
    ref = _payload_ref(contract, event)
    if ref is None:
        return payload, [
            Problem("Unknown webhook event", "an event of the spec's webhooks", repr(event))
        ]
    found = [str(problem) for problem in contract.problems(ref, payload)]
    if found:
        return payload, [
            Problem(f"Webhook {event} payload breaks its schema", ref, "; ".join(found[:3]))
        ]
    return payload, []


def _payload_ref(contract: Contract, event: Any) -> str | None:
    item = (
        (contract.spec.document.get("webhooks") or {}).get(event)
        if isinstance(event, str)
        else None
    )
    if not isinstance(item, dict):
        return None
    body = contract.spec.resolve(item.get("post", {}).get("requestBody")) or {}
    schema = ((body.get("content") or {}).get("application/json") or {}).get("schema") or {}
    ref = schema.get("$ref")
    return ref if isinstance(ref, str) else None


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
            with WebhookReceiver(host, port) as receiver:
                events, problems = self._trigger(contract, base_url, authorization, flow_id)
                secret, wait = settings.webhook_secret, settings.webhook_wait
                problems += self._await(contract, receiver, events, secret, wait)
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
        self,
        contract: Contract,
        receiver: WebhookReceiver,
        expected: dict[str, tuple[str, str]],
        secret: str,
        wait: float,
    ) -> list[Problem]:
        """Wait until every expected event arrived or `wait` seconds passed, then judge."""
        deadline = time.monotonic() + wait
        while True:
            deliveries = receiver.snapshot()
            problems, arrived = judge_deliveries(contract, secret, deliveries, expected)
            if set(expected) <= arrived or time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
        for event in sorted(set(expected) - arrived):
            key, value = expected[event]
            expected_text = f"{event} with {key} {value!r} within {wait:g} s"
            got = f"{len(deliveries)} deliveries, none of them that event"
            problems.append(Problem("Webhook did not arrive", expected_text, got))
        return problems


def judge_deliveries(
    contract: Contract,
    secret: str,
    deliveries: list[Delivery],
    expected: dict[str, tuple[str, str]],
) -> tuple[list[Problem], set[str]]:
    """Verify every delivery; return the problems and the expected events that arrived valid."""
    problems: list[Problem] = []
    arrived: set[str] = set()
    for delivery in deliveries:
        payload, found = delivery_problems(contract, secret, delivery)
        problems += found
        if found or not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
            continue
        event = str(payload.get("event"))
        key, value = expected.get(event, ("", ""))
        if key and payload["data"].get(key) == value:
            arrived.add(event)
    return problems, arrived
