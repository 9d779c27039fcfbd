"""Deliberately broken variants of the mock, each breaking the contract in one known way.

A variant wraps `create_app` in ASGI middleware that rewrites the requests or responses of some
routes. The contract kit must report every variant under the check named for it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from mock_server import MockConfig, create_app
from tests.conftest import PRO_TOKEN, free_port

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = dict[str, str]
Rewrite = Callable[[Scope, int, Headers, bytes], tuple[int, Headers, bytes]]


class ResponseRewriter:
    """Buffers the responses of matching requests and passes them through `rewrite`."""

    def __init__(self, app: ASGIApp, method: str, path: str, rewrite: Rewrite) -> None:
        self.app = app
        self.method = method
        self.path = re.compile(path)
        self.rewrite = rewrite

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matches = scope["type"] == "http" and scope["method"] == self.method
        if not matches or not self.path.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, collect)
        headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
        status, headers, body = self.rewrite(scope, start["status"], headers, b"".join(chunks))
        headers["content-length"] = str(len(body))
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


class TokenInjector:
    """Replaces a missing or unknown bearer token with a valid one: auth is ignored."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = re.compile(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.path.fullmatch(scope["path"]):
            other_headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"authorization"]
            scope = {
                **scope,
                "headers": [*other_headers, (b"authorization", f"Bearer {PRO_TOKEN}".encode())],
            }
        await self.app(scope, receive, send)


def json_rewrite(
    change: Callable[[Any, Scope], Any], statuses: tuple[int, ...] = (200,)
) -> Rewrite:
    """Rewrite JSON bodies of the given statuses with `change(body, scope)`."""

    def rewrite(
        scope: Scope, status: int, headers: Headers, body: bytes
    ) -> tuple[int, Headers, bytes]:
        if status not in statuses:
            return status, headers, body
        changed = change(json.loads(body), scope)
        return status, headers, json.dumps(changed).encode()

    return rewrite


def edit(**values: Any) -> Callable[[Any, Scope], Any]:
    """Set fields of a JSON object; a value of DROP removes the field."""

    def change(body: Any, scope: Scope) -> Any:
        for key, value in values.items():
            if value is DROP:
                body.pop(key, None)
            else:
                body[key] = value
        return body

    return change


DROP = object()
FLOW = r"/v1/flows/[^/]+"
FLOWS = r"/v1/flows"
STREAM = r"/v1/flows/[^/]+/stream"
RUN = r"/v1/runs/[^/]+"
SESSIONS = r"/v1/sessions"
HISTORY = r"/v1/sessions/[^/]+/history"


def sse_rewrite(change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> Rewrite:
    """Rewrite the events of 200 event streams with `change(payloads)`, keeping ids in order."""

    def rewrite(
        scope: Scope, status: int, headers: Headers, body: bytes
    ) -> tuple[int, Headers, bytes]:
        if status != 200:
            return status, headers, body
        payloads = [
            json.loads(line[5:]) for line in body.decode().splitlines() if line.startswith("data:")
        ]
        events = [f"id: {i}\ndata: {json.dumps(p)}\n\n" for i, p in enumerate(change(payloads), 1)]
        return status, headers, "".join(events).encode()

    return rewrite


def _without_end(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [payload for payload in payloads if payload.get("type") != "end"]


def _wrong_token(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for payload in payloads:
        if payload.get("type") == "token":
            payload["content"] = payload["content"] + " (extra)"
            break
    return payloads


def _html_500(
    scope: Scope, status: int, headers: Headers, body: bytes
) -> tuple[int, Headers, bytes]:
    if status < 400:
        return status, headers, body
    page = b"<html><body><h1>500 Internal Server Error</h1></body></html>"
    return 500, {**headers, "content-type": "text/html; charset=utf-8"}, page


def _streamed_error(
    scope: Scope, status: int, headers: Headers, body: bytes
) -> tuple[int, Headers, bytes]:
    if status != 404:
        return status, headers, body
    event = {
        "type": "error",
        "run_id": "run_0",
        "error": {"code": "FLOW_EXECUTION_FAILED", "message": "x"},
    }
    return (
        404,
        {**headers, "content-type": "text/event-stream"},
        f"data: {json.dumps(event)}\n\n".encode(),
    )


def _no_rate_limit_headers(
    scope: Scope, status: int, headers: Headers, body: bytes
) -> tuple[int, Headers, bytes]:
    without = {
        name: value for name, value in headers.items() if not name.startswith("x-ratelimit-")
    }
    return status, without, body


def _static_rate_limit_headers(
    scope: Scope, status: int, headers: Headers, body: bytes
) -> tuple[int, Headers, bytes]:
    # Like a mock that copies the spec's example headers: the numbers never move.
    fixed = {"x-ratelimit-limit": "100", "x-ratelimit-remaining": "99"}
    return status, {**headers, **fixed, "x-ratelimit-reset": str(int(time.time()) + 30)}, body


def _text_plain(
    scope: Scope, status: int, headers: Headers, body: bytes
) -> tuple[int, Headers, bytes]:
    return status, {**headers, "content-type": "text/plain"}, body


def _accept_invalid_session(
    scope: Scope, status: int, headers: Headers, body: bytes
) -> tuple[int, Headers, bytes]:
    if status != 400:
        return status, headers, body
    session = {
        "id": "session_accepted1",
        "flow_id": "flow_abc123",
        "user_id": None,
        "status": "active",
        "created_at": "2024-01-15T10:00:00Z",
        "metadata": {},
    }
    return 201, headers, json.dumps(session).encode()


def _found_unknown_flow(
    scope: Scope, status: int, headers: Headers, body: bytes
) -> tuple[int, Headers, bytes]:
    if status != 404:
        return status, headers, body
    flow_id = scope["path"].rsplit("/", 1)[-1]
    flow = {
        "id": flow_id,
        "name": "Invented",
        "description": "",
        "status": "published",
        "config": {"input_schema": {}, "output_schema": {}},
        "created_at": "2024-01-10T09:00:00Z",
        "updated_at": "2024-01-10T09:00:00Z",
    }
    return 200, headers, json.dumps(flow).encode()


def _run_never_found(
    scope: Scope, status: int, headers: Headers, body: bytes
) -> tuple[int, Headers, bytes]:
    envelope = {
        "error": {"code": "NOT_FOUND", "message": "Run not found.", "details": None},
        "request_id": headers.get("x-request-id", "req_x"),
    }
    return 404, headers, json.dumps(envelope).encode()


def _history_without_newest(body: Any, scope: Scope) -> Any:
    # A page of one (the kit's first read, for the total) stays; longer pages lose the newest two.
    if len(body["messages"]) > 1:
        body["messages"] = body["messages"][:-2]
    return body


def _error_code(body: Any, scope: Scope) -> Any:
    body["error"]["code"] = "INVALID_REQUEST"
    return body


@dataclass(frozen=True)
class Variant:
    """One contract break: how to build it, which operations show it, which check must see it."""

    name: str
    check: str
    operations: tuple[str, ...]
    wrap: Callable[[ASGIApp], ASGIApp]
    phases: tuple[str, ...] = ("examples", "coverage", "fuzzing")
    extra: tuple[str, ...] = field(default=())


def rewriter(method: str, path: str, rewrite: Rewrite) -> Callable[[ASGIApp], ASGIApp]:
    return lambda app: ResponseRewriter(app, method, path, rewrite)


VARIANTS = [
    Variant(
        "missing required field",
        "response_schema_conformance",
        ("getFlow",),
        rewriter("GET", FLOW, json_rewrite(edit(created_at=DROP))),
    ),
    Variant(
        "wrong type",
        "response_schema_conformance",
        ("listFlows",),
        rewriter("GET", FLOWS, json_rewrite(lambda b, s: {**b, "total": str(b["total"])})),
    ),
    Variant(
        "enum value outside the enum",
        "response_schema_conformance",
        ("getFlow",),
        rewriter("GET", FLOW, json_rewrite(edit(status="archived"))),
    ),
    Variant(
        "bad timestamp",
        "response_schema_conformance",
        ("getFlow",),
        rewriter("GET", FLOW, json_rewrite(edit(created_at="2024-13-45T25:61:00Z"))),
    ),
    Variant(
        "wrong content type",
        "content_type_conformance",
        ("listFlows",),
        rewriter("GET", FLOWS, _text_plain),
    ),
    Variant("HTML 500", "error_envelope", ("getFlow",), rewriter("GET", FLOW, _html_500)),
    Variant(
        "error body without request_id",
        "error_envelope",
        ("getFlow",),
        rewriter("GET", FLOW, json_rewrite(edit(request_id=DROP), (400, 404))),
    ),
    Variant(
        "error code of another status",
        "error_envelope",
        ("getFlow",),
        rewriter("GET", FLOW, json_rewrite(_error_code, (404,))),
    ),
    Variant(
        "200 for an unknown flow", "state", ("getFlow",), rewriter("GET", FLOW, _found_unknown_flow)
    ),
    Variant(
        "invalid body accepted",
        "negative_data_rejection",
        ("createSession",),
        rewriter("POST", SESSIONS, _accept_invalid_session),
    ),
    Variant(
        "missing rate-limit headers",
        "rate_limits",
        ("listFlows",),
        rewriter("GET", FLOWS, _no_rate_limit_headers),
    ),
    Variant(
        "static rate-limit headers",
        "rate_limits",
        ("listFlows",),
        rewriter("GET", FLOWS, _static_rate_limit_headers),
    ),
    Variant(
        "stream that never sends end",
        "streaming",
        ("streamFlow",),
        rewriter("POST", STREAM, sse_rewrite(_without_end)),
    ),
    Variant(
        "tokens that do not add up to the output",
        "streaming",
        ("streamFlow",),
        rewriter("POST", STREAM, sse_rewrite(_wrong_token)),
    ),
    Variant(
        "error known up front sent as a stream",
        "streaming",
        ("streamFlow",),
        rewriter("POST", STREAM, _streamed_error),
    ),
    Variant("auth ignored", "ignored_auth", ("getFlow",), lambda app: TokenInjector(app, FLOW)),
    Variant(
        "created run not retrievable", "state", ("runFlow",), rewriter("GET", RUN, _run_never_found)
    ),
    Variant(
        "session history loses messages",
        "state",
        ("streamFlow",),
        rewriter("GET", HISTORY, json_rewrite(_history_without_newest)),
    ),
]


class SwitchableApp:
    """An ASGI app whose target can be replaced between test runs."""

    def __init__(self) -> None:
        self.target: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        assert self.target is not None
        await self.target(scope, receive, send)


def build_variant(variant: Variant | None) -> ASGIApp:
    """Make a fresh mock, wrapped in the variant's break when one is given."""
    app = create_app(MockConfig(stream_delay_ms=0, rate_limit="1000000/min"))
    return variant.wrap(app) if variant is not None else app


@contextmanager
def serve_in_thread(app: ASGIApp, timeout: float = 10.0, lifespan: str = "off") -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free port of 127.0.0.1; yield its URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on port {port} within {timeout} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
