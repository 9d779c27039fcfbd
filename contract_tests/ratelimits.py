"""Rate-limit rules: the three headers on every response to a known token, and 429 responses."""

from __future__ import annotations

import email.utils
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from contract_tests.failures import Problem

LIMIT = "x-ratelimit-limit"
REMAINING = "x-ratelimit-remaining"
RESET = "x-ratelimit-reset"
QUOTA_HEADERS = {
    LIMIT: "X-RateLimit-Limit",
    REMAINING: "X-RateLimit-Remaining",
    RESET: "X-RateLimit-Reset",
}
# Date and Reset are rounded to whole seconds, and uvicorn refreshes its cached Date once a
# second, later still on a busy machine. A correct Reset was seen 63 s after its Date on a
# loaded 2-core CI machine.
CLOCK_SLACK = 5
# Limits count requests per minute, so a window always has room again within a minute.
WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Quota:
    """The rate-limit headers of one response."""

    limit: int
    remaining: int
    reset: int


def server_time(headers: Mapping[str, str]) -> float:
    """Return the response's `Date` as a Unix time, or the local clock when it has none."""
    value = headers.get("date")
    if value:
        try:
            return email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()


def read_quota(headers: Mapping[str, str]) -> tuple[Quota | None, list[Problem]]:
    """Parse the three headers; return the quota, or None and the problems that stop it."""
    missing = [title for name, title in QUOTA_HEADERS.items() if name not in headers]
    if missing:
        expected = "X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset"
        return None, [Problem("Rate-limit headers missing", expected, "no " + ", ".join(missing))]
    values = {}
    problems = []
    for name, title in QUOTA_HEADERS.items():
        text = headers[name].strip()
        if text.isascii() and text.isdigit():
            values[name] = int(text)
        else:
            expected = f"{title} as a non-negative integer"
            problems.append(Problem("Rate-limit header is not an integer", expected, repr(text)))
    if problems:
        return None, problems
    return Quota(values[LIMIT], values[REMAINING], values[RESET]), []


def header_problems(
    status: int, headers: Mapping[str, str], required: bool
) -> tuple[Quota | None, list[Problem]]:
    """Check a response's rate-limit headers; `required` when the spec demands them here."""
    if not required and not any(name in headers for name in QUOTA_HEADERS):
        return None, []
    quota, problems = read_quota(headers)
    if quota is not None:
        problems += _quota_problems(quota, server_time(headers))
    if status == 429:
        problems += _rejection_problems(quota, headers)
    return quota, problems


def _quota_problems(quota: Quota, now: float) -> list[Problem]:
    problems = []
    if quota.limit < 1:
        problems.append(
            Problem("Rate limit below 1", "X-RateLimit-Limit of at least 1", str(quota.limit))
        )
    if quota.remaining > quota.limit:
        expected = f"X-RateLimit-Remaining at most X-RateLimit-Limit ({quota.limit})"
        problems.append(
            Problem("Remaining requests above the limit", expected, str(quota.remaining))
        )
    if quota.reset < now - CLOCK_SLACK:
        expected = f"X-RateLimit-Reset, a Unix time in seconds, at or after {int(now)} (now)"
        problems.append(Problem("Rate-limit reset is in the past", expected, str(quota.reset)))
    elif quota.reset > now + WINDOW_SECONDS + CLOCK_SLACK:
        expected = f"X-RateLimit-Reset within a minute of {int(now)} (now), in seconds"
        problems.append(Problem("Rate-limit reset is too far ahead", expected, str(quota.reset)))
    return problems


def _rejection_problems(quota: Quota | None, headers: Mapping[str, str]) -> list[Problem]:
    problems = []
    retry_after = headers.get("retry-after")
    if retry_after is None:
        problems.append(Problem("429 without Retry-After", "a Retry-After header", "none"))
    elif not (retry_after.strip().isascii() and retry_after.strip().isdigit()):
        expected = "Retry-After in whole seconds"
        problems.append(Problem("Retry-After is not whole seconds", expected, repr(retry_after)))
    elif int(retry_after) < 1:
        problems.append(Problem("Retry-After below 1", "Retry-After of at least 1", retry_after))
    if quota is not None and quota.remaining != 0:
        expected = "X-RateLimit-Remaining: 0 on a 429"
        problems.append(Problem("429 with requests remaining", expected, str(quota.remaining)))
    return problems


def sequence_problems(quotas: Sequence[Quota], exact: bool, curl: str) -> list[Problem]:
    """Check that Remaining drops with each request of a quick sequence from one client.

    A pair whose Limit or Reset differs spans a new window and is not compared. With `exact`,
    each request must use up exactly one; otherwise (other requests run at the same time) at
    least one.
    """
    for earlier, later in itertools.pairwise(quotas):
        if earlier.limit != later.limit or earlier.reset != later.reset:
            continue
        used = earlier.remaining - later.remaining
        if used == 1 or (used > 1 and not exact):
            continue
        expected = f"X-RateLimit-Remaining {earlier.remaining - 1} after {earlier.remaining}"
        got = f"{later.remaining} (Reset unchanged at {later.reset})"
        return [Problem("Remaining does not drop by one per request", expected, got, curl)]
    return []
