"""The kit's own requests, sent to verify state, and the time spent waiting for rate limits."""

from __future__ import annotations

import email.utils
import logging
import shlex
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

logger = logging.getLogger("broxi_mock.contract")

FILTERED = "[Filtered]"
# A 429 is waited out at most this many times per request, each wait at most MAX_WAIT seconds.
MAX_RETRIES = 3
MAX_WAIT = 60.0
DEFAULT_TIMEOUT = 30.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Return the seconds a `Retry-After` value specifies (delay or HTTP-date), or None."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


@dataclass
class WaitLedger:
    """Counts the 429 responses met during a run and the seconds waited because of them."""

    rate_limited: int = 0
    waited: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, seconds: float) -> None:
        with self._lock:
            self.rate_limited += 1
            self.waited += seconds

    def reset(self) -> None:
        with self._lock:
            self.rate_limited = 0
            self.waited = 0.0


LEDGER = WaitLedger()


def curl_command(method: str, url: str, body: str | None = None) -> str:
    """Write a curl command for a request of the kit, with the token left out."""
    parts = ["curl", "-X", method, "-H", f"Authorization: {FILTERED}"]
    if body is not None:
        parts += ["-H", "Content-Type: application/json", "-d", body]
    parts.append(url)
    return " ".join(shlex.quote(part) for part in parts)


_OPEN_CLIENTS: weakref.WeakSet[FollowUpClient] = weakref.WeakSet()


def close_clients() -> None:
    """Close the connections of every follow-up client of this process."""
    for client in list(_OPEN_CLIENTS):
        client.close()


class FollowUpClient:
    """Sends GET and POST requests with a given Authorization header, waiting out 429 responses."""

    def __init__(
        self,
        ledger: WaitLedger = LEDGER,
        timeout: float = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.ledger = ledger
        self.sleep = sleep
        self._client = httpx.Client(timeout=timeout, transport=transport)
        _OPEN_CLIENTS.add(self)

    def get(self, url: str, authorization: str | None) -> httpx.Response:
        """Send a GET request; a 429 is waited out and sent again, up to MAX_RETRIES times."""
        return self.send("GET", url, authorization)

    def send(
        self, method: str, url: str, authorization: str | None, json_body: Any = None
    ) -> httpx.Response:
        """Send one request of the kit; a 429 is waited out and sent again."""
        headers = {"Authorization": authorization} if authorization else {}
        response = self._client.request(method, url, headers=headers, json=json_body)
        for _ in range(MAX_RETRIES):
            if response.status_code != 429:
                break
            delay = parse_retry_after(response.headers.get("Retry-After"))
            if delay is None:
                break
            delay = min(delay, MAX_WAIT)
            logger.info("Rate limited on %s %s; waiting %.1f s.", method, url, delay)
            self.ledger.record(delay)
            self.sleep(delay)
            response = self._client.request(method, url, headers=headers, json=json_body)
        return response

    def close(self) -> None:
        self._client.close()
