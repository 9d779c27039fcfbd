"""Per-token request counting over a moving one-minute window, built on `limits`."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from mock_server.fixtures import TokenFixture

TIER_LIMITS = {"free": 100, "pro": 1000}


@dataclass(frozen=True)
class RateLimitState:
    """The outcome of counting one request."""

    limit: int
    remaining: int
    reset: int
    allowed: bool
    retry_after: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    """Counts requests per token; `mode` is 'tier', 'off' or 'N/min'."""

    def __init__(self, mode: str = "tier") -> None:
        self.mode = mode
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._items: dict[int, RateLimitItem] = {}

    def limit_for(self, token: TokenFixture) -> int | None:
        """Return the requests per minute a token may send, or None when limiting is off."""
        if self.mode == "off":
            return None
        if self.mode != "tier":
            return int(self.mode.removesuffix("/min"))
        if token.requests_per_minute is not None:
            return token.requests_per_minute
        return TIER_LIMITS[token.tier]

    def hit(self, token: TokenFixture) -> RateLimitState | None:
        """Count one request of `token`; return None when limiting is off."""
        limit = self.limit_for(token)
        if limit is None:
            return None
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = RateLimitItemPerMinute(limit)
        allowed = self._limiter.hit(item, token.token)
        stats = self._limiter.get_window_stats(item, token.token)
        now = time.time()
        reset = math.ceil(stats.reset_time)
        return RateLimitState(
            limit=limit,
            remaining=max(0, stats.remaining),
            reset=reset,
            allowed=allowed,
            retry_after=max(1, math.ceil(stats.reset_time - now)),
        )

    def reset(self) -> None:
        """Forget every count."""
        self._limiter.storage.reset()
