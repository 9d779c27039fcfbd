"""Usage entries: the generated history, the entries of live runs, and their hourly roll-up."""

from __future__ import annotations

import datetime as dt
import random

from mock_server.fixtures import Fixtures
from mock_server.records import RunRecord, UsageEntry

UsageKey = tuple[str, str, dt.datetime]


def start_of_today() -> dt.datetime:
    """Return midnight UTC of the current day."""
    return dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def generate_usage_history(
    fixtures: Fixtures, rng: random.Random, today: dt.datetime
) -> list[UsageEntry]:
    """Make the finished runs of the `usage.days` days before `today`; a seed replays them."""
    usage = fixtures.usage
    flows = {flow.id: flow for flow in fixtures.flows}
    entries = []
    for day_offset in range(usage.days, 0, -1):
        day = today - dt.timedelta(days=day_offset)
        for flow_id, (low, high) in usage.runs_per_day.items():
            flow = flows[flow_id]
            for _ in range(rng.randint(low, high)):
                tokens = rng.randint(*usage.tokens_per_run)
                finished_at = day + dt.timedelta(seconds=rng.randrange(86_400))
                entries.append(
                    UsageEntry(
                        finished_at=finished_at,
                        workspace=flow.workspace,
                        flow_id=flow_id,
                        runs=1,
                        successful=int(rng.random() >= usage.failure_rate),
                        tokens=tokens,
                        duration=round(rng.uniform(*usage.duration_seconds), 3),
                        cost=tokens * flow.price_per_1k_tokens / 1000,
                    )
                )
    entries.sort(key=lambda entry: entry.finished_at)
    return entries


def usage_of_run(run: RunRecord, price_per_1k_tokens: float) -> UsageEntry:
    """Count one finished run; cost is its tokens at the flow's price per 1,000 tokens."""
    assert run.completed_at is not None, "only finished runs are counted"
    tokens = run.usage.prompt_tokens + run.usage.completion_tokens
    return UsageEntry(
        finished_at=run.completed_at,
        workspace=run.workspace,
        flow_id=run.flow_id,
        runs=1,
        successful=int(run.status == "completed"),
        tokens=tokens,
        duration=run.duration,
        cost=tokens * price_per_1k_tokens / 1000,
    )


def hour_key(entry: UsageEntry) -> UsageKey:
    """Return the (workspace, flow, hour) an entry is rolled up into."""
    hour = entry.finished_at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return entry.workspace, entry.flow_id, hour


def merge_usage(total: UsageEntry | None, entry: UsageEntry, key: UsageKey) -> UsageEntry:
    """Add `entry` to the roll-up `total` of its hour; the result is dated at the hour's start.

    NOTE: a report whose period starts or ends inside that hour counts the whole roll-up in or
    out, because the runs' own times are gone.
    """
    if total is None:
        return UsageEntry(
            key[2],
            key[0],
            key[1],
            entry.runs,
            entry.successful,
            entry.tokens,
            entry.duration,
            entry.cost,
        )
    return UsageEntry(
        finished_at=key[2],
        workspace=key[0],
        flow_id=key[1],
        runs=total.runs + entry.runs,
        successful=total.successful + entry.successful,
        tokens=total.tokens + entry.tokens,
        duration=total.duration + entry.duration,
        cost=total.cost + entry.cost,
    )
