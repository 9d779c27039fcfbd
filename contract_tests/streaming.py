"""Event stream rules: framing, event order, one run id, and agreement with the stored run."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contract_tests.contract import (
    EVENT_STREAM,
    STREAM_EVENT,
    Contract,
    excerpt,
    join_items,
    media_type_of,
)
from contract_tests.failures import Problem
from contract_tests.sse import Event, parse_event_stream

TERMINAL_TYPES = ("end", "error")


@dataclass
class StreamReading:
    """The content of a well-framed stream: its run, its output and how it ended."""

    run_id: str | None = None
    flow_id: str | None = None
    output: str = ""
    terminal: dict[str, Any] | None = None
    payloads: list[dict[str, Any]] = field(default_factory=list)


def error_stream_problems(status: int, headers: Mapping[str, str]) -> list[Problem]:
    """Check that an error status of a streaming operation came as JSON, not as a stream."""
    if status < 400 or media_type_of(headers.get("content-type")) != EVENT_STREAM:
        return []
    expected = "a JSON error envelope: errors known before the stream starts are never streamed"
    return [
        Problem("Error sent as an event stream", expected, f"status {status} as {EVENT_STREAM}")
    ]


def stream_problems(
    contract: Contract,
    headers: Mapping[str, str],
    content: bytes | None,
    cut_short: bool,
    resumed: bool = False,
) -> tuple[StreamReading, list[Problem]]:
    """Check a 200 response that must be an event stream; return its content and its problems."""
    reading = StreamReading()
    content_type = headers.get("content-type")
    if media_type_of(content_type) != EVENT_STREAM:
        got = f"Content-Type {content_type!r} with body {excerpt(content)}"
        return reading, [Problem("Stream response is not an event stream", EVENT_STREAM, got)]
    problems = []
    if cut_short:
        expected = "the server closes the stream after its end or error event"
        got = "the stream was still open when the kit stopped reading it (request timeout)"
        problems.append(Problem("Stream did not end", expected, got))
    stream = parse_event_stream(content or b"")
    if stream.unterminated:
        expected = "every event closed by an empty line before the stream ends"
        got = f"the stream ends inside an event: {stream.unterminated[:3]!r}"
        problems.append(Problem("Stream ends inside an event", expected, got))
    problems += _framing_problems(stream.events)
    payloads, payload_problems = _payloads(contract, stream.events)
    problems += payload_problems
    reading.payloads = payloads
    # A resumed stream (`X-Run-ID`) starts after the client's last event, so it has no `start`
    # and its order is checked only by its framing and payloads.
    if not resumed:
        problems += _order_problems(payloads, cut_short)
    problems += _run_id_problems(payloads, reading)
    return reading, problems


def _framing_problems(events: list[Event]) -> list[Problem]:
    problems = []
    typed = [event.event_type for event in events if event.event_type != "message"]
    if typed:
        expected = "no event: field, so that EventSource.onmessage receives every event"
        problems.append(Problem("Event has an event type", expected, f"event: {typed[0]!r}"))
    missing = sum(1 for event in events if event.own_id is None)
    if missing:
        problems.append(
            Problem("Event without id", "an id: line in every event", f"{missing} without")
        )
    ids = [event.own_id for event in events if event.own_id is not None]
    if any(not (value.isascii() and value.isdigit()) for value in ids):
        problems.append(Problem("Event id is not a number", "ids of digits", repr(ids[:5])))
    elif any(int(a) >= int(b) for a, b in itertools.pairwise(ids)):
        problems.append(
            Problem("Event ids do not grow", "ids that grow within a run", repr(ids[:10]))
        )
    return problems


def _payloads(
    contract: Contract, events: list[Event]
) -> tuple[list[dict[str, Any]], list[Problem]]:
    payloads = []
    broken = []
    for index, event in enumerate(events):
        try:
            payload = json.loads(event.data)
        except json.JSONDecodeError as exc:
            broken.append(f"event {index + 1}: data is not JSON ({exc.msg}): {excerpt(event.data)}")
            continue
        found = (
            contract.problems(STREAM_EVENT, payload) if contract.has_component(STREAM_EVENT) else []
        )
        if found:
            broken.append(f"event {index + 1}: {found[0]}")
        if isinstance(payload, dict):
            payloads.append(payload)
    if not broken:
        return payloads, []
    problem = Problem(
        "Event data is not a StreamEvent", "JSON StreamEvent objects", join_items(broken)
    )
    return payloads, [problem]


def _order_problems(payloads: list[dict[str, Any]], cut_short: bool) -> list[Problem]:
    types = [str(payload.get("type")) for payload in payloads]
    if not types:
        return [Problem("Stream has no events", "start, tokens, then end or error", "no events")]
    problems = []
    if types[0] != "start":
        problems.append(
            Problem(
                "Stream does not open with start",
                "a first event of type start",
                f"first event of type {types[0]!r}",
            )
        )
    if types.count("start") > 1:
        problems.append(
            Problem(
                "Stream has several start events",
                "one start event",
                f"{types.count('start')} start events",
            )
        )
    terminal_at = [index for index, kind in enumerate(types) if kind in TERMINAL_TYPES]
    if not terminal_at and not cut_short:
        problems.append(
            Problem(
                "Stream never sends end or error",
                "a last event of type end or error",
                f"last event of type {types[-1]!r} after {len(types)} events",
            )
        )
    elif terminal_at and (len(terminal_at) > 1 or terminal_at[0] != len(types) - 1):
        sequence = ", ".join(types[terminal_at[0] :][:5])
        problems.append(
            Problem(
                "Events follow the end of the stream",
                "end or error as the one last event",
                f"events {sequence}",
            )
        )
    return problems


def _run_id_problems(payloads: list[dict[str, Any]], reading: StreamReading) -> list[Problem]:
    run_ids = [payload["run_id"] for payload in payloads if "run_id" in payload]
    if payloads and payloads[0].get("type") == "start":
        reading.run_id = payloads[0].get("run_id")
        reading.flow_id = payloads[0].get("flow_id")
    elif run_ids:
        reading.run_id = run_ids[0]
    reading.output = "".join(
        str(payload.get("content", "")) for payload in payloads if payload.get("type") == "token"
    )
    terminals = [payload for payload in payloads if payload.get("type") in TERMINAL_TYPES]
    reading.terminal = terminals[-1] if terminals else None
    different = sorted({str(value) for value in run_ids} - {str(reading.run_id)})
    if not different:
        return []
    expected = f"run_id {reading.run_id!r} in every event"
    return [Problem("Run id changes within a stream", expected, f"also {different[:3]!r}")]


def run_agreement_problems(
    reading: StreamReading, run: Any, flow_id: str, curl: str
) -> list[Problem]:
    """Compare the content of a finished stream with the run that `GET /runs/{id}` returns."""
    if not isinstance(run, dict) or reading.terminal is None:
        return []
    problems = []
    if run.get("output") != reading.output:
        expected = f"output equal to the streamed tokens joined: {excerpt(reading.output)}"
        got = f"output {excerpt(str(run.get('output')))}"
        problems.append(
            Problem("Streamed tokens do not add up to the run output", expected, got, curl)
        )
    want = "completed" if reading.terminal.get("type") == "end" else "failed"
    if run.get("status") != want:
        expected = f"status {want!r} after a {reading.terminal.get('type')} event"
        problems.append(
            Problem(
                "Run status disagrees with the stream",
                expected,
                f"status {run.get('status')!r}",
                curl,
            )
        )
    if run.get("flow_id") != flow_id:
        problems.append(
            Problem(
                "Run belongs to another flow",
                f"flow_id {flow_id!r}",
                f"flow_id {run.get('flow_id')!r}",
                curl,
            )
        )
    key = "usage" if want == "completed" else "error"
    if key in reading.terminal and run.get(key) != reading.terminal[key]:
        expected = f"{key} {reading.terminal[key]!r} as in the {reading.terminal.get('type')} event"
        problems.append(
            Problem(
                f"Run {key} disagrees with the stream", expected, f"{key} {run.get(key)!r}", curl
            )
        )
    return problems
