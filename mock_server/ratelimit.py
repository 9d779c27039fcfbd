"""Per-token request counting over a moving one-minute window, built on `limits`."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import MovingWindowSupport, Storage
from limits.strategies import MovingWindowRateLimiter

from mock_server.errors import ApiError
from mock_server.fixtures import TokenFixture

TIER_LIMITS = {"free": 100, "pro": 1000}
Clock = Callable[[], float]


class RateLimitState(NamedTuple):
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


class _PerMinuteItem(RateLimitItemPerMinute):
    """A per-minute limit that builds the storage key of each token once, not per request."""

    __slots__ = ["_keys"]

    def __init__(self, amount: int) -> None:
        super().__init__(amount)
        # One key per token that reached the limiter; tokens are fixtures, so this is bounded.
        self._keys: dict[tuple[bytes | str | int | float, ...], str] = {}

    def key_for(self, *identifiers: bytes | str | int | float) -> str:
        key = self._keys.get(identifiers)
        if key is None:
            key = self._keys[identifiers] = super().key_for(*identifiers)
        return key


class _Window:
    """The requests of one key: counts per time slot, oldest first, and their total."""

    __slots__ = ("counts", "times", "total")

    def __init__(self) -> None:
        # Two deques of numbers rather than one of pairs, because pairs would be objects the
        # garbage collector tracks, and a busy token keeps up to 6,000 slots a minute.
        self.times: deque[float] = deque()
        self.counts: deque[int] = deque()
        self.total = 0


class ClockedMemoryStorage(Storage, MovingWindowSupport):
    """In-memory storage for the `limits` moving-window strategy that reads time from `clock`.

    `limits.storage.MemoryStorage` (limits 5.x) calls `time.time()` itself and expires entries
    on a timer thread, so tests cannot move its time. This storage keeps the same contract with
    an injected clock, and it prunes a key's expired entries whenever the key is read.

    Requests are counted per slot of 1 / `SLOTS_PER_SECOND` seconds, not one timestamp each,
    so a key's memory stays bounded (at most 6,000 slots a minute) however high its limit.
    NOTE: a request therefore leaves the window up to 10 ms before a full minute has passed.
    """

    STORAGE_SCHEME = None
    SLOTS_PER_SECOND = 100

    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__()
        self.clock = clock
        self._windows: dict[str, _Window] = {}

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        now = self.clock()
        window = self._live_window(key, now - expiry)
        if window.total + amount > limit:
            return False
        # Dividing, not multiplying by 0.01, keeps a whole second exact.
        slot = math.floor(now * self.SLOTS_PER_SECOND) / self.SLOTS_PER_SECOND
        if window.times and window.times[-1] == slot:
            window.counts[-1] += amount
        else:
            window.times.append(slot)
            window.counts.append(amount)
        window.total += amount
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = self.clock()
        window = self._live_window(key, now - expiry)
        if not window.total:
            return now, 0
        return window.times[0], window.total

    def _live_window(self, key: str, oldest_allowed: float) -> _Window:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window()
        times = window.times
        while times and times[0] <= oldest_allowed:
            times.popleft()
            window.total -= window.counts.popleft()
        return window

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
        count = len(self._windows)
        self._windows.clear()
        return count

    def clear(self, key: str) -> None:
        self._windows.pop(key, None)


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
            item = self._items[limit] = _PerMinuteItem(limit)
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
