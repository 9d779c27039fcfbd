"""Generate the usage history that analytics report before any live run."""

from __future__ import annotations

import datetime as dt
import random

from mock_server.fixtures import Fixtures
from mock_server.records import UsageEntry


def generate_usage_history(fixtures: Fixtures, rng: random.Random) -> list[UsageEntry]:
    """Make the finished runs of the last `usage.days` days, the same for the same seed and day."""
    usage = fixtures.usage
    prices = {flow.id: flow.price_per_1k_tokens for flow in fixtures.flows}
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    entries = []
    for day_offset in range(usage.days, 0, -1):
        day = today - dt.timedelta(days=day_offset)
        for flow_id, (low, high) in usage.runs_per_day.items():
            for _ in range(rng.randint(low, high)):
                tokens = rng.randint(*usage.tokens_per_run)
                finished_at = day + dt.timedelta(seconds=rng.randrange(86_400))
                entries.append(
                    UsageEntry(
                        finished_at=finished_at,
                        flow_id=flow_id,
                        tokens=tokens,
                        succeeded=rng.random() >= usage.failure_rate,
                        duration=round(rng.uniform(*usage.duration_seconds), 3),
                        cost=tokens * prices[flow_id] / 1000,
                    )
                )
    entries.sort(key=lambda entry: entry.finished_at)
    return entries
