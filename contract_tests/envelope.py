"""The error envelope rule: every 4xx and 5xx body is the documented envelope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contract_tests.contract import (
    ERROR_RESPONSE,
    Contract,
    excerpt,
    is_json_media_type,
    join_items,
    load_json,
    media_type_of,
)
from contract_tests.failures import Problem

ENVELOPE = '{"error": {"code", "message", "details"}, "request_id"}'


def envelope_problems(
    contract: Contract, status: int, headers: Mapping[str, str], content: bytes | None
) -> list[Problem]:
    """List how an error response breaks the envelope; an empty list for success statuses."""
    if status < 400:
        return []
    media_type = media_type_of(headers.get("content-type"))
    if not is_json_media_type(media_type):
        got = f"Content-Type {headers.get('content-type')!r} with body {excerpt(content)}"
        return [Problem("Error response is not JSON", f"application/json {ENVELOPE}", got)]
    body, why_not = load_json(content)
    if why_not is not None:
        return [Problem("Error body is not JSON", ENVELOPE, f"{why_not}: {excerpt(content)}")]
    problems = _shape_problems(contract, body)
    if isinstance(body, dict):
        problems += _code_problems(contract, status, body)
        problems += _request_id_problems(headers, body)
    return problems


def _shape_problems(contract: Contract, body: Any) -> list[Problem]:
    problems = []
    lacks_request_id = isinstance(body, dict) and "request_id" not in body
    if lacks_request_id:
        problems.append(Problem("Error body has no request_id", "a request_id field", repr(body)))
    if contract.has_component(ERROR_RESPONSE):
        found = [
            str(problem)
            for problem in contract.problems(ERROR_RESPONSE, body)
            # A missing request_id already has its own, clearer problem.
            if not (lacks_request_id and "request_id" in problem.message)
        ]
        if found:
            problems.append(
                Problem("Error body is not the error envelope", ENVELOPE, join_items(found))
            )
    return problems


def _code_problems(contract: Contract, status: int, body: dict[str, Any]) -> list[Problem]:
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(code, str) or not contract.codes_by_status:
        return []
    allowed = contract.codes_by_status.get(status)
    if allowed is None:
        return [
            Problem(
                "Error status has no documented code",
                f"one of the statuses {sorted(contract.codes_by_status)}",
                f"status {status} with code {code!r}",
            )
        ]
    if code in allowed:
        return []
    expected = " or ".join(repr(item) for item in sorted(allowed))
    got = f"code {code!r} on status {status}"
    return [Problem("Error code does not belong to its status", expected, got)]


def _request_id_problems(headers: Mapping[str, str], body: dict[str, Any]) -> list[Problem]:
    if "request_id" not in body:
        return []
    header = headers.get("x-request-id")
    if header is None:
        return [
            Problem(
                "Error response has no X-Request-ID header",
                f"X-Request-ID: {body['request_id']!r}",
                "no X-Request-ID header",
            )
        ]
    if header == body["request_id"]:
        return []
    expected = f"request_id equal to X-Request-ID {header!r}"
    return [
        Problem("Error request_id differs from X-Request-ID", expected, repr(body["request_id"]))
    ]
