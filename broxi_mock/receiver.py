"""A webhook receiver that verifies Standard Webhooks signatures and checks payloads.

`broxi-mock webhooks listen` runs it; the contract kit can run it too, because this module does
not import `mock_server`. It works against any sender of the spec's webhooks.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broxi_mock.webhook_contract import PayloadChecker

MAX_BODY_BYTES = 1024 * 1024
MAX_REMEMBERED_IDS = 100_000
# The data fields worth printing, in order, when a payload has them.
SUMMARY_FIELDS = ("run_id", "session_id", "flow_id", "status", "reason")
Outcome = Literal["valid", "duplicate", "invalid"]


@dataclass(frozen=True)
class Verdict:
    """The receiver's decision on one delivery, and the HTTP status it responded with."""

    outcome: Outcome
    webhook_id: str | None
    event: str | None
    detail: str
    status_code: int

    def line(self) -> str:
        """Format the verdict as one line of `webhooks listen` output."""
        label = "INVALID" if self.outcome == "invalid" else self.outcome
        return f"{label:<9} {self.event or '-':<18} {self.webhook_id or '-'}  {self.detail}"


class WebhookReceiver:
    """Verifies deliveries and counts valid events, each event id once."""

    def __init__(
        self,
        secret: str,
        checker: PayloadChecker,
        on_verdict: Callable[[Verdict], None] | None = None,
    ) -> None:
        self._webhook = Webhook(secret)
        self._checker = checker
        self.listeners: list[Callable[[Verdict], None]] = [on_verdict] if on_verdict else []
        # NOTE: only the latest MAX_REMEMBERED_IDS event ids are remembered, so a redelivery of
        # an older event would be counted again.
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.counts: dict[Outcome, int] = {"valid": 0, "duplicate": 0, "invalid": 0}

    def receive(self, body: bytes, headers: Mapping[str, str]) -> Verdict:
        """Verify one delivery's signature and payload, count it and return the verdict."""
        verdict = self._judge(body, {key.lower(): value for key, value in headers.items()})
        self.record(verdict)
        return verdict

    def record(self, verdict: Verdict) -> None:
        """Count a verdict and pass it to every listener."""
        self.counts[verdict.outcome] += 1
        for listener in self.listeners:
            listener(verdict)

    def _judge(self, body: bytes, headers: dict[str, str]) -> Verdict:
        webhook_id = headers.get("webhook-id")
        try:
            self._webhook.verify(body, headers, json_parse=False)
        except WebhookVerificationError as exc:
            return Verdict("invalid", webhook_id, None, f"signature rejected: {exc}", 401)
        try:
            payload = json.loads(body)
        except ValueError as exc:
            return Verdict("invalid", webhook_id, None, f"body is not valid JSON: {exc}", 400)
        except RecursionError:
            return Verdict(
                "invalid", webhook_id, None, "body is not valid JSON: nests too deep", 400
            )
        if _has_lone_surrogate(payload):
            detail = "body is not valid JSON text: a \\u escape encodes a lone UTF-16 surrogate"
            return Verdict("invalid", webhook_id, None, detail, 400)
        event = payload.get("event") if isinstance(payload, dict) else None
        event = event if isinstance(event, str) else None
        problems = self._checker.check(payload)
        if not problems and payload["id"] != webhook_id:
            problems = [f"/id: {payload['id']!r} differs from webhook-id {webhook_id!r}"]
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            return Verdict("invalid", webhook_id, event, f"payload {problems[0]}{more}", 400)
        assert webhook_id is not None  # verify() raises on a missing webhook-id header
        if webhook_id in self._seen:
            return Verdict("duplicate", webhook_id, event, "redelivery, counted once", 200)
        self._remember(webhook_id)
        return Verdict("valid", webhook_id, event, _summarize(payload["data"]), 200)

    def _remember(self, webhook_id: str) -> None:
        self._seen[webhook_id] = None
        if len(self._seen) > MAX_REMEMBERED_IDS:
            self._seen.popitem(last=False)

    def summary(self) -> str:
        """Describe the counts in one line."""
        counts = self.counts
        return (
            f"{counts['valid']} valid event(s), {counts['duplicate']} redelivery(ies), "
            f"{counts['invalid']} invalid delivery(ies)"
        )

    def problem(self, expect: int | None) -> str | None:
        """Return why the run failed (an invalid delivery, or too few valid events), if it did."""
        if self.counts["invalid"]:
            return f"{self.counts['invalid']} delivery(ies) were invalid"
        if expect is not None and self.counts["valid"] < expect:
            return f"expected {expect} valid event(s), received {self.counts['valid']}"
        return None

    def app(self) -> Starlette:
        """Build the ASGI app that accepts deliveries with POST on any path."""

        async def deliver(request: Request) -> Response:
            body = await _read_body(request)
            if body is None:
                too_large = f"body is larger than {MAX_BODY_BYTES} bytes"
                verdict = Verdict(
                    "invalid", request.headers.get("webhook-id"), None, too_large, 413
                )
                self.record(verdict)
            else:
                verdict = self.receive(body, request.headers)
            content = json.dumps({"outcome": verdict.outcome, "detail": verdict.detail})
            return Response(content, verdict.status_code, media_type="application/json")

        return Starlette(routes=[Route("/{path:path}", deliver, methods=["POST"])])


async def _read_body(request: Request) -> bytes | None:
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _has_lone_surrogate(payload: Any) -> bool:
    # Python decodes a lone surrogate escape into a string that cannot be encoded as UTF-8.
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _summarize(data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    return " ".join(f"{name}={data[name]}" for name in SUMMARY_FIELDS if data.get(name))


async def listen(
    receiver: WebhookReceiver, sock: socket.socket, expect: int | None, timeout: float | None
) -> None:
    """Serve the receiver until `expect` valid events arrived, `timeout` passed or a signal."""
    enough = asyncio.Event()
    counts = receiver.counts

    def check_done(verdict: Verdict) -> None:
        if expect is not None and counts["valid"] >= expect:
            enough.set()

    receiver.listeners.append(check_done)
    config = uvicorn.Config(receiver.app(), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    waiting = asyncio.create_task(enough.wait())
    await asyncio.wait({serving, waiting}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    waiting.cancel()
    await serving
