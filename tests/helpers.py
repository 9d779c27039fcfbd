"""Test helpers: an SSE parser, fixture folders with extra flows, and a raw ASGI stream driver."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import PRO_TOKEN, REPO_ROOT

LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class StreamEvent:
    """One parsed Server-Sent Event: its `id` (None when absent) and decoded JSON data."""

    id: str | None
    data: dict[str, Any]


@dataclass
class ParsedStream:
    """Everything a stream carried: its events and its comment lines."""

    events: list[StreamEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ids_of_comment_blocks: list[str | None] = field(default_factory=list)


def parse_stream(text: str) -> ParsedStream:
    """Parse an event stream the way the HTML standard says a browser does."""
    parsed = ParsedStream()
    event_id: str | None = None
    data: list[str] = []
    comment_only = False
    for line in LINE_BREAK.split(text):
        if line == "":
            if data:
                parsed.events.append(StreamEvent(event_id, json.loads("\n".join(data))))
            elif comment_only:
                parsed.ids_of_comment_blocks.append(event_id)
            event_id, data, comment_only = None, [], False
        elif line.startswith(":"):
            parsed.comments.append(line[1:].strip())
            comment_only = not data
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "id":
                event_id = value
    return parsed


def flow_fixture(flow_id: str, **overrides: Any) -> dict[str, Any]:
    """Make a published support flow entry for flows.yaml, with `overrides` applied."""
    flows = yaml.safe_load((REPO_ROOT / "fixtures" / "flows.yaml").read_text())["flows"]
    flow = copy.deepcopy(next(entry for entry in flows if entry["id"] == "flow_abc123"))
    flow.update(id=flow_id, name=f"Test flow {flow_id}", **overrides)
    return flow


def fixtures_with_flows(folder: Path, *flows: dict[str, Any]) -> Path:
    """Copy the bundled fixtures into `folder` and add `flows` to them."""
    shutil.copytree(REPO_ROOT / "fixtures", folder)
    path = folder / "flows.yaml"
    data = yaml.safe_load(path.read_text())
    data["flows"].extend(flows)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == data, "flows.yaml round trip"
    return folder


async def abort_stream(app: Any, flow_id: str, after_events: int, body: bytes) -> int:
    """Open a stream on an ASGI app, disconnect after `after_events` events; return events seen."""
    disconnect = asyncio.Event()
    request_sent = False
    seen = 0

    async def receive() -> dict[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal seen
        if message["type"] == "http.response.body":
            seen += message.get("body", b"").count(b"\ndata: ")
            if seen >= after_events:
                disconnect.set()

    scope = post_scope(f"/v1/flows/{flow_id}/stream", len(body), accept=b"text/event-stream")
    async with asyncio.timeout(10):
        await app(scope, receive, send)
    return seen


def post_scope(path: str, content_length: int, accept: bytes | None = None) -> dict[str, Any]:
    """Build the ASGI scope of a JSON POST with the pro token."""
    headers = [
        (b"authorization", f"Bearer {PRO_TOKEN}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(content_length).encode()),
    ]
    if accept is not None:
        headers.append((b"accept", accept))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


async def call_and_leave(
    app: Any, path: str, body: bytes, declared: int, leave_after: float = 0.0
) -> None:
    """POST `body` (claiming `declared` bytes) to an ASGI app; leave after `leave_after` s."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": len(body) < declared}
        await asyncio.sleep(leave_after)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    scope = post_scope(path, declared)
    async with asyncio.timeout(10):
        await app(scope, receive, send)
