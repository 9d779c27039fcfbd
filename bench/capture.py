"""Capture the mock's responses once, so the reference app serves the very same bytes."""

from __future__ import annotations

import base64
import http.client
import re
from typing import Any

from bench.load import Scenario

EVENT = re.compile(rb".*?(?:\r\n\r\n|\n\n)", re.DOTALL)


def capture_bodies(port: int, scenarios: list[Scenario]) -> dict[str, Any]:
    """Send each scenario's request once; check its status and keep its body."""
    bodies: dict[str, Any] = {}
    for scenario in scenarios:
        status, body = _fetch(port, scenario)
        if status != scenario.expected_status:
            raise RuntimeError(
                f"{scenario.label} returned {status}, expected {scenario.expected_status}: "
                f"{body[:300]!r}"
            )
        if scenario.key == "stream_flow":
            events = EVENT.findall(body)
            if len(events) < 3:
                raise RuntimeError(
                    f"{scenario.label} sent {len(events)} events, expected 3 or more"
                )
            bodies["stream_events"] = [base64.b64encode(event).decode() for event in events]
        else:
            bodies[scenario.key] = base64.b64encode(body).decode()
    return bodies


def _fetch(port: int, scenario: Scenario) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = scenario.body if scenario.method != "GET" else None
        connection.request(
            scenario.method, scenario.path, body=body, headers=dict(scenario.headers)
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
