"""Usage analytics computed from the usage history and finished live runs."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from mock_server.errors import field_error
from mock_server.records import UsageEntry, format_timestamp, utc_now

DEFAULT_PERIOD = dt.timedelta(days=30)
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
MAX_BUCKETS = 2000
LEAP_SECOND = re.compile(r"^(.{10}T\d\d:\d\d:)60(.*)$")


def parse_date(name: str, value: str) -> dt.datetime:
    """Parse an RFC 3339 date-time with an offset, or a date meaning its start in UTC."""
    # RFC 3339 allows a lower-case "t" and "z" and a leap second (":60"); Python's parser
    # accepts neither, so both are normalised first.
    text = value.upper()
    leap = LEAP_SECOND.match(text)
    if leap is not None:
        text = leap.group(1) + "59" + leap.group(2)
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            parsed = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        else:
            parsed = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise _bad_date(name, value) from exc
    if parsed.tzinfo is None:
        raise _bad_date(name, value)
    try:
        moment = parsed.astimezone(dt.UTC) + dt.timedelta(seconds=1 if leap else 0)
    except OverflowError as exc:
        raise _out_of_range(name, value) from exc
    if not EARLIEST <= moment < LATEST:
        raise _out_of_range(name, value)
    return moment


def _out_of_range(name: str, value: str) -> Exception:
    return field_error(
        400,
        f"Query parameter {name} is out of range: {value!r} (expected 1970-01-01 to 9998-12-31).",
        name,
        "query",
        "date out of range",
    )


def _bad_date(name: str, value: str) -> Exception:
    return field_error(
        400,
        f"Query parameter {name} is invalid: {value!r} is not an RFC 3339 date-time with an "
        "offset or a date (YYYY-MM-DD).",
        name,
        "query",
        "invalid date",
    )


def bucket_start(moment: dt.datetime, granularity: str) -> dt.datetime:
    """Return the start of the bucket that contains `moment`."""
    moment = moment.astimezone(dt.UTC)
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == "day":
        return day
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def next_bucket(start: dt.datetime, granularity: str) -> dt.datetime:
    """Return the start of the bucket after the one starting at `start`."""
    if granularity == "hour":
        return start + dt.timedelta(hours=1)
    if granularity == "day":
        return start + dt.timedelta(days=1)
    if granularity == "week":
        return start + dt.timedelta(weeks=1)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def usage_report(
    entries: Iterable[UsageEntry],
    start_date: str | None,
    end_date: str | None,
    flow_id: str | None,
    granularity: str,
) -> dict[str, Any]:
    """Sum the runs that finished in [start, end) into buckets of the given granularity."""
    start, end = _period(start_date, end_date)
    buckets = _empty_buckets(start, end, granularity)
    for entry in entries:
        if start <= entry.finished_at < end and (flow_id is None or entry.flow_id == flow_id):
            bucket = buckets[bucket_start(entry.finished_at, granularity)]
            bucket["runs"] += entry.runs
            bucket["succeeded"] += entry.successful
            bucket["tokens"] += entry.tokens
            bucket["cost"] += entry.cost
            bucket["duration"] += entry.duration
    breakdown = [
        {
            "date": _bucket_label(moment, granularity),
            "runs": bucket["runs"],
            "tokens": bucket["tokens"],
            "cost": round(bucket["cost"], 4),
        }
        for moment, bucket in buckets.items()
    ]
    return {
        "period": {"start": format_timestamp(start), "end": format_timestamp(end)},
        "granularity": granularity,
        "metrics": _metrics(buckets.values(), breakdown),
        "daily_breakdown": breakdown,
    }


def _bucket_label(moment: dt.datetime, granularity: str) -> str:
    return format_timestamp(moment) if granularity == "hour" else moment.date().isoformat()


def _period(start_date: str | None, end_date: str | None) -> tuple[dt.datetime, dt.datetime]:
    end = parse_date("end_date", end_date) if end_date else utc_now()
    if start_date is None:
        return max(EARLIEST, end - DEFAULT_PERIOD), end
    start = parse_date("start_date", start_date)
    if end_date is None and end < start:
        raise field_error(
            400,
            f"Query parameter start_date is in the future: {start_date!r} is after the default "
            "end_date (now); send an end_date after it.",
            "start_date",
            "query",
            "start_date is after the default end_date (now)",
        )
    if end < start:
        raise field_error(
            400,
            f"Query parameter end_date is before start_date: {end_date!r} < {start_date!r}.",
            "end_date",
            "query",
            "end_date is before start_date",
        )
    return start, end


def _empty_buckets(
    start: dt.datetime, end: dt.datetime, granularity: str
) -> dict[dt.datetime, dict[str, Any]]:
    buckets: dict[dt.datetime, dict[str, Any]] = {}
    moment = bucket_start(start, granularity)
    while moment < end or not buckets:
        buckets[moment] = {"runs": 0, "succeeded": 0, "tokens": 0, "cost": 0.0, "duration": 0.0}
        if len(buckets) > MAX_BUCKETS:
            raise field_error(
                400,
                f"The period holds more than {MAX_BUCKETS} {granularity} buckets; "
                "shorten it or use a coarser granularity.",
                "granularity",
                "query",
                "too many buckets",
            )
        moment = next_bucket(moment, granularity)
    return buckets


def _metrics(buckets: Iterable[dict[str, Any]], breakdown: list[dict[str, Any]]) -> dict[str, Any]:
    buckets = list(buckets)
    runs = sum(bucket["runs"] for bucket in buckets)
    succeeded = sum(bucket["succeeded"] for bucket in buckets)
    duration = sum(bucket["duration"] for bucket in buckets)
    return {
        "total_runs": runs,
        "successful_runs": succeeded,
        "failed_runs": runs - succeeded,
        "total_tokens": sum(bucket["tokens"] for bucket in buckets),
        "avg_response_time": round(duration / runs, 3) if runs else 0.0,
        # The total is the sum of the rounded bucket costs, so the two always agree.
        "cost": round(sum(item["cost"] for item in breakdown), 4),
    }
