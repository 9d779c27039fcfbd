"""The kit's rules on single responses: envelope, rate limits, streams and stored state."""

from __future__ import annotations

import json
import time

import pytest

from broxi_mock.spec import load_spec
from contract_tests.contract import Contract, contract_for
from contract_tests.envelope import envelope_problems
from contract_tests.ratelimits import Quota, header_problems, sequence_problems
from contract_tests.state import (
    history_problems,
    page_problems,
    run_problems,
    usage_report_problems,
)
from contract_tests.streaming import run_agreement_problems, stream_problems


@pytest.fixture(scope="module")
def contract() -> Contract:
    return contract_for(load_spec().document)


def envelope(code: str = "NOT_FOUND", request_id: str = "req_1") -> bytes:
    body = {"error": {"code": code, "message": "Flow 'x' not found.", "details": None}}
    return json.dumps({**body, "request_id": request_id}).encode()


JSON_HEADERS = {"content-type": "application/json", "x-request-id": "req_1"}


def titles(problems: list) -> list[str]:
    return [problem.title for problem in problems]


def test_valid_error_envelope_passes(contract: Contract) -> None:
    assert envelope_problems(contract, 404, JSON_HEADERS, envelope()) == []


def test_html_error_is_not_json(contract: Contract) -> None:
    headers = {"content-type": "text/html"}

    problems = envelope_problems(contract, 500, headers, b"<html>oops</html>")

    assert titles(problems) == ["Error response is not JSON"]


def test_code_of_another_status_is_reported(contract: Contract) -> None:
    problems = envelope_problems(contract, 404, JSON_HEADERS, envelope("INVALID_REQUEST"))

    assert titles(problems) == ["Error code does not belong to its status"]
    assert "'NOT_FOUND'" in problems[0].expected


def test_request_id_must_match_header(contract: Contract) -> None:
    problems = envelope_problems(contract, 404, JSON_HEADERS, envelope(request_id="req_2"))

    assert titles(problems) == ["Error request_id differs from X-Request-ID"]


def test_missing_request_id_is_named(contract: Contract) -> None:
    body = json.loads(envelope())
    del body["request_id"]

    problems = envelope_problems(contract, 404, JSON_HEADERS, json.dumps(body).encode())

    assert titles(problems) == ["Error body has no request_id"]


def quota_headers(remaining: int = 5, reset: int | None = None, **extra: str) -> dict[str, str]:
    reset = int(time.time()) + 30 if reset is None else reset
    headers = {"x-ratelimit-limit": "10", "x-ratelimit-remaining": str(remaining)}
    return {**headers, "x-ratelimit-reset": str(reset), **extra}


def test_good_quota_headers_pass() -> None:
    quota, problems = header_problems(200, quota_headers(), required=True)

    assert quota == Quota(10, 5, quota.reset if quota else 0)
    assert problems == []


def test_missing_quota_headers_reported_when_required() -> None:
    _, problems = header_problems(200, {}, required=True)

    assert titles(problems) == ["Rate-limit headers missing"]


def test_reset_in_the_past_is_reported() -> None:
    _, problems = header_problems(200, quota_headers(reset=42), required=True)

    assert titles(problems) == ["Rate-limit reset is in the past"]


def test_reset_hours_ahead_is_reported() -> None:
    now = int(time.time())

    _, problems = header_problems(200, quota_headers(reset=now + 3600), required=True)

    assert titles(problems) == ["Rate-limit reset is too far ahead"]


def test_reset_a_rounded_minute_ahead_passes() -> None:
    now = int(time.time())

    _, problems = header_problems(200, quota_headers(reset=now + 63), required=True)

    assert problems == []


def test_429_without_retry_after_is_reported() -> None:
    _, problems = header_problems(429, quota_headers(remaining=0), required=True)

    assert titles(problems) == ["429 without Retry-After"]


def test_429_with_requests_left_is_reported() -> None:
    headers = quota_headers(remaining=3, **{"retry-after": "12"})

    _, problems = header_problems(429, headers, required=True)

    assert titles(problems) == ["429 with requests remaining"]


def test_remaining_must_drop_by_one() -> None:
    quotas = [Quota(10, 9, 100), Quota(10, 8, 100), Quota(10, 8, 100)]

    problems = sequence_problems(quotas, exact=True, curl="curl x")

    assert titles(problems) == ["Remaining does not drop by one per request"]


def test_new_window_is_not_compared() -> None:
    quotas = [Quota(10, 1, 100), Quota(10, 9, 160)]

    assert sequence_problems(quotas, exact=True, curl="curl x") == []


def sse(*payloads: dict) -> bytes:
    return "".join(
        f"id: {i}\ndata: {json.dumps(p)}\n\n" for i, p in enumerate(payloads, 1)
    ).encode()


STREAM_HEADERS = {"content-type": "text/event-stream"}
START = {"type": "start", "run_id": "run_1", "flow_id": "flow_1"}
END = {
    "type": "end",
    "run_id": "run_1",
    "usage": {"total_tokens": 3, "prompt_tokens": 1, "completion_tokens": 2},
}


def token(content: str, run_id: str = "run_1") -> dict:
    return {"type": "token", "content": content, "run_id": run_id}


def test_well_formed_stream_passes(contract: Contract) -> None:
    reading, problems = stream_problems(
        contract, STREAM_HEADERS, sse(START, token("Hi"), token("!"), END), False
    )

    assert problems == []
    assert reading.output == "Hi!"
    assert reading.run_id == "run_1"


def test_stream_without_start_is_reported(contract: Contract) -> None:
    _, problems = stream_problems(contract, STREAM_HEADERS, sse(token("Hi"), END), False)

    assert "Stream does not open with start" in titles(problems)


def test_resumed_stream_needs_no_start(contract: Contract) -> None:
    content = sse(token("Hi"), END)

    reading, problems = stream_problems(contract, STREAM_HEADERS, content, False, resumed=True)

    assert problems == []
    assert reading.run_id == "run_1"


def test_resumed_stream_still_checks_run_id(contract: Contract) -> None:
    content = sse(token("Hi"), token("!", run_id="run_2"), END)

    _, problems = stream_problems(contract, STREAM_HEADERS, content, False, resumed=True)

    assert titles(problems) == ["Run id changes within a stream"]


def test_run_id_change_is_reported(contract: Contract) -> None:
    content = sse(START, token("Hi", run_id="run_2"), END)

    _, problems = stream_problems(contract, STREAM_HEADERS, content, False)

    assert titles(problems) == ["Run id changes within a stream"]


def test_events_after_end_are_reported(contract: Contract) -> None:
    _, problems = stream_problems(contract, STREAM_HEADERS, sse(START, END, token("late")), False)

    assert titles(problems) == ["Events follow the end of the stream"]


def test_stream_cut_mid_event_is_reported(contract: Contract) -> None:
    content = sse(START, token("Hi")) + b'data: {"type": "end"'

    _, problems = stream_problems(contract, STREAM_HEADERS, content, False)

    assert "Stream ends inside an event" in titles(problems)


def test_stored_run_must_match_stream(contract: Contract) -> None:
    reading, _ = stream_problems(contract, STREAM_HEADERS, sse(START, token("Hi"), END), False)
    run = {"output": "Hello", "status": "completed", "flow_id": "flow_1", "usage": END["usage"]}

    problems = run_agreement_problems(reading, run, "flow_1", "curl x")

    assert titles(problems) == ["Streamed tokens do not add up to the run output"]


def test_page_size_must_match_total() -> None:
    body = {"flows": [{}, {}], "total": 5, "limit": 2, "offset": 4}

    problems = page_problems(body, "flows", {"limit": "2", "offset": "4"}, 20)

    assert titles(problems) == ["Page size disagrees with total"]


def test_finished_run_needs_completed_at() -> None:
    run = {"status": "completed", "completed_at": None, "error": None, "progress": 100}

    assert titles(run_problems(run)) == ["Finished run has no completed_at"]


def test_usage_metrics_must_sum_buckets() -> None:
    buckets = [{"runs": 2, "tokens": 10, "cost": 0.5}, {"runs": 1, "tokens": 5, "cost": 0.25}]
    metrics = {
        "total_runs": 3,
        "successful_runs": 3,
        "failed_runs": 0,
        "total_tokens": 16,
        "cost": 0.75,
    }

    problems = usage_report_problems({"metrics": metrics, "daily_breakdown": buckets})

    assert titles(problems) == ["Usage total_tokens is not the sum of the buckets"]


def test_history_needs_message_then_reply() -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Other"}]

    problems = history_problems(messages, "Hi", "Hello", "curl x")

    assert titles(problems) == ["Session history lacks the reply"]


def test_history_allows_interleaved_turns() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": "Other question"},
        {"role": "assistant", "content": "Other answer"},
        {"role": "assistant", "content": "Hello"},
    ]

    problems = history_problems(messages, "Hi", "Hello", "curl x")

    assert problems == []


def test_history_reply_before_message_fails() -> None:
    messages = [{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Hi"}]

    problems = history_problems(messages, "Hi", "Hello", "curl x")

    assert titles(problems) == ["Session history lacks the reply"]
