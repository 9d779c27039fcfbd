"""State rules: a response agrees with itself, with the request and with later reads."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from contract_tests.failures import Problem

RUN_FIELDS = ("id", "flow_id", "session_id", "created_at")


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _query_integer(query: Mapping[str, str], name: str, default: int) -> int | None:
    text = query.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        return None


def page_problems(
    body: Any, items_key: str, query: Mapping[str, str], default_limit: int
) -> list[Problem]:
    """Check that a page's `total`, `limit` and `offset` agree with the items it holds."""
    if not isinstance(body, dict) or not isinstance(body.get(items_key), list):
        return []
    total, limit, offset = (_integer(body.get(key)) for key in ("total", "limit", "offset"))
    if total is None or limit is None or offset is None:
        return []
    problems = []
    for name, value, default in (("limit", limit, default_limit), ("offset", offset, 0)):
        sent = _query_integer(query, name, default)
        if sent is not None and value != sent:
            expected = f"{name} {sent} as requested"
            problems.append(Problem(f"Page {name} differs from the request", expected, str(value)))
    size = len(body[items_key])
    want = max(0, min(limit, total - offset))
    if size != want:
        expected = f"{want} {items_key} (total {total}, offset {offset}, limit {limit})"
        problems.append(Problem("Page size disagrees with total", expected, f"{size} {items_key}"))
    return problems


def run_problems(run: Any) -> list[Problem]:
    """Check a run's status, timestamps, error and usage against each other."""
    if not isinstance(run, dict):
        return []
    problems = usage_problems(run.get("usage"))
    status = run.get("status")
    finished = run.get("completed_at") is not None
    if status in ("completed", "failed") and not finished:
        problems.append(
            Problem(
                "Finished run has no completed_at",
                "a completed_at timestamp",
                f"status {status!r} with completed_at null",
            )
        )
    if status == "running" and finished:
        problems.append(
            Problem(
                "Running run has completed_at",
                "completed_at null while running",
                repr(run.get("completed_at")),
            )
        )
    if status == "failed" and run.get("error") is None:
        problems.append(Problem("Failed run has no error", "an error object", "error null"))
    if status == "completed" and run.get("error") is not None:
        problems.append(Problem("Completed run has an error", "error null", repr(run.get("error"))))
    if status == "completed" and run.get("progress") != 100:
        problems.append(
            Problem("Completed run is not at 100%", "progress 100", repr(run.get("progress")))
        )
    return problems


def usage_problems(usage: Any) -> list[Problem]:
    """Check that `total_tokens` is the sum of prompt and completion tokens."""
    if not isinstance(usage, dict):
        return []
    parts = [
        _integer(usage.get(key)) for key in ("total_tokens", "prompt_tokens", "completion_tokens")
    ]
    total, prompt, completion = parts
    if total is None or prompt is None or completion is None or total == prompt + completion:
        return []
    expected = f"total_tokens {prompt + completion} (prompt {prompt} + completion {completion})"
    return [Problem("Token usage does not add up", expected, f"total_tokens {total}")]


def same_run_problems(created: Any, fetched: Any, curl: str) -> list[Problem]:
    """Check that a run read back is the run that was returned when it was created."""
    if not isinstance(created, dict) or not isinstance(fetched, dict):
        return []
    if created.get("status") in ("completed", "failed"):
        keys = sorted(set(created) | set(fetched))
    else:
        keys = list(RUN_FIELDS)
    differing = [key for key in keys if created.get(key) != fetched.get(key)]
    if not differing:
        return []
    key = differing[0]
    expected = f"{key} {created.get(key)!r} as returned when the run was created"
    got = f"{key} {fetched.get(key)!r}" + (f" (also {differing[1:]})" if len(differing) > 1 else "")
    return [Problem("Run read back differs from the created run", expected, got, curl)]


def session_problems(session: Any, request: Any) -> list[Problem]:
    """Check that a created session contains what the request sent."""
    if not isinstance(session, dict) or not isinstance(request, dict):
        return []
    wanted = {
        "flow_id": request.get("flow_id"),
        "user_id": request.get("user_id"),
        "metadata": request.get("metadata") or {},
        "status": "active",
    }
    for key, value in wanted.items():
        if session.get(key) != value:
            expected = f"{key} {value!r} as sent"
            return [
                Problem(
                    "Created session differs from the request",
                    expected,
                    f"{key} {session.get(key)!r}",
                )
            ]
    return []


def history_problems(messages: list[Any], sent: str, reply: str | None, curl: str) -> list[Problem]:
    """Check that the newest messages of a session hold the input and, if any, the reply."""
    contents = [(m.get("role"), m.get("content")) for m in messages if isinstance(m, dict)]
    positions = [i for i, item in enumerate(contents) if item == ("user", sent)]
    if not positions:
        expected = f"a user message {sent[:80]!r} among the newest {len(contents)} messages"
        return [Problem("Session history lacks the message sent", expected, "none", curl)]
    if reply is None:
        return []
    # Concurrent runs in one session interleave their turns, so the reply may come after other
    # messages. It must only come after the message it replies to.
    later = contents[positions[0] + 1 :]
    if ("assistant", reply) in later:
        return []
    expected = f"the assistant reply {reply[:80]!r} after the message sent"
    replies = [item for item in later if item[0] == "assistant"]
    got = repr(replies[-1]) if replies else "no reply after it"
    return [Problem("Session history lacks the reply", expected, got, curl)]


def usage_report_problems(report: Any) -> list[Problem]:
    """Check that a usage report's metrics are the sums of its buckets."""
    if not isinstance(report, dict):
        return []
    metrics, buckets = report.get("metrics"), report.get("daily_breakdown")
    if not isinstance(metrics, dict) or not isinstance(buckets, list):
        return []
    if not all(isinstance(bucket, dict) for bucket in buckets):
        return []
    problems = []
    for metric, key in (("total_runs", "runs"), ("total_tokens", "tokens")):
        summed = sum(_integer(bucket.get(key)) or 0 for bucket in buckets)
        if metrics.get(metric) != summed:
            problems.append(
                Problem(
                    f"Usage {metric} is not the sum of the buckets",
                    f"{metric} {summed}",
                    repr(metrics.get(metric)),
                )
            )
    cost = sum(float(bucket.get("cost") or 0) for bucket in buckets)
    reported = metrics.get("cost")
    # Each bucket's cost is rounded, so the sum may differ from the total by rounding only.
    tolerance = 1e-4 * max(1, len(buckets))
    if isinstance(reported, int | float) and not math.isclose(reported, cost, abs_tol=tolerance):
        problems.append(
            Problem("Usage cost is not the sum of the buckets", f"cost {cost:.4f}", repr(reported))
        )
    runs = [_integer(metrics.get(key)) for key in ("total_runs", "successful_runs", "failed_runs")]
    if None not in runs and runs[0] != runs[1] + runs[2]:  # type: ignore[operator]
        problems.append(
            Problem(
                "Usage runs do not add up",
                "successful_runs + failed_runs == total_runs",
                f"{runs[1]} + {runs[2]} != {runs[0]}",
            )
        )
    return problems
