"""Per-token request counting over a moving one-minute window, built on `limits`."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import MovingWindowSupport, Storage
from limits.strategies import MovingWindowRateLimiter

from mock_server.errors import ApiError
from mock_server.fixtures import TokenFixture

TIER_LIMITS = {"free": 100, "pro": 1000}
Clock = Callable[[], float]


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


class ClockedMemoryStorage(Storage, MovingWindowSupport):
    """In-memory storage for the `limits` moving-window strategy that reads time from `clock`.

    `limits.storage.MemoryStorage` (limits 5.x) calls `time.time()` itself and expires entries
    on a timer thread, so tests cannot move its time. This storage keeps the same contract with
    an injected clock, and it prunes a key's expired entries whenever the key is read.
    """

    STORAGE_SCHEME = None

    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__()
        self.clock = clock
        # Newest entry last; each deque contains at most `limit` timestamps of its key.
        self._entries: dict[str, deque[float]] = {}

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        now = self.clock()
        entries = self._live_entries(key, now - expiry)
        if len(entries) + amount > limit:
            return False
        entries.extend([now] * amount)
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = self.clock()
        entries = self._live_entries(key, now - expiry)
        if not entries:
            return now, 0
        return entries[0], len(entries)

    def _live_entries(self, key: str, oldest_allowed: float) -> deque[float]:
        entries = self._entries.setdefault(key, deque())
        while entries and entries[0] <= oldest_allowed:
            entries.popleft()
        return entries

    # The moving-window strategy needs none of the counter methods below; they exist because
    # `Storage` declares them abstract, and they refuse rather than count wrongly.
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError("ClockedMemoryStorage supports only the moving window")

    def get(self, key: str) -> int:
        raise NotImplementedError("ClockedMemoryStorage supports only the moving window")

    def get_expiry(self, key: str) -> float:
        raise NotImplementedError("ClockedMemoryStorage supports only the moving window")

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        count = len(self._entries)
        self._entries.clear()
        return count

    def clear(self, key: str) -> None:
        self._entries.pop(key, None)


class RateLimiter:
    """Counts requests per token; `mode` is 'tier', 'off' or 'N/min'."""

    def __init__(self, mode: str = "tier", clock: Clock = time.time) -> None:
        self.mode = mode
        self.clock = clock
        self._limiter = MovingWindowRateLimiter(ClockedMemoryStorage(clock))
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
        """Count one request of `token`; return None when limiting is off.

        A rejected request is not counted, so a client that keeps retrying too early does not
        push its own window further out.
        """
        item = self._item_for(token)
        if item is None:
            return None
        allowed = self._limiter.hit(item, token.token)
        return self._state(item, token, allowed)

    def peek(self, token: TokenFixture) -> RateLimitState | None:
        """Return the state of `token`'s window without counting a request."""
        item = self._item_for(token)
        if item is None:
            return None
        return self._state(item, token, allowed=True)

    def reset(self) -> None:
        """Forget every count."""
        self._limiter.storage.reset()

    def _item_for(self, token: TokenFixture) -> RateLimitItem | None:
        limit = self.limit_for(token)
        if limit is None:
            return None
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = RateLimitItemPerMinute(limit)
        return item

    def _state(self, item: RateLimitItem, token: TokenFixture, allowed: bool) -> RateLimitState:
        stats = self._limiter.get_window_stats(item, token.token)
        # The window has room again when its oldest counted request leaves it.
        seconds_left = stats.reset_time - self.clock()
        return RateLimitState(
            limit=item.amount,
            remaining=max(0, stats.remaining),
            reset=math.ceil(stats.reset_time),
            allowed=allowed,
            retry_after=max(1, math.ceil(seconds_left)),
        )


def rate_limited_error(state: RateLimitState) -> ApiError:
    """Build the 429 of a token over its limit, with `Retry-After` in whole seconds."""
    message = (
        f"Rate limit of {state.limit} requests per minute exceeded; "
        f"retry after {state.retry_after} seconds."
    )
    details = {"limit": state.limit, "retry_after": state.retry_after}
    return ApiError(429, message, details, headers={"Retry-After": str(state.retry_after)})
