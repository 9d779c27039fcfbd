"""One signed webhook request: headers, timeouts, and a precise error for every failure."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import time
from typing import TYPE_CHECKING

from mock_server.deliveries import AttemptRecord, DeliveryRecord
from mock_server.records import utc_now
from mock_server.webhook_settings import WebhookSettings

# Bytes of a failed response's body kept in the attempt's error, for the receiver's message.
EXCERPT_BYTES = 200
# A response body up to this size is read to the end, so that its connection can be reused.
DRAIN_BYTES = 16 * 1024
RETRY_AFTER_STATUSES = (429, 503)

# httpx and standardwebhooks are imported where a delivery needs them, so that a server with
# no webhook endpoint never loads them (about 6 MB of memory).
if TYPE_CHECKING:
    import httpx
    from standardwebhooks.webhooks import Webhook


def signed_headers(signer: Webhook, event_id: str, body: bytes) -> dict[str, str]:
    """Return the Standard Webhooks headers for one attempt, signed at the current time."""
    now = dt.datetime.now(dt.UTC)
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(event_id, now, body),
    }


async def post_signed(
    client: httpx.AsyncClient,
    signer: Webhook,
    record: DeliveryRecord,
    number: int,
    settings: WebhookSettings,
) -> tuple[AttemptRecord, float | None]:
    """Send one attempt of a delivery; return its record and the receiver's Retry-After."""
    import httpx

    event = record.event
    headers = signed_headers(signer, event.id, event.body)
    started_at = utc_now()
    clock = time.monotonic()
    status_code: int | None = None
    retry_after: float | None = None
    try:
        # The whole attempt is bounded too, so a receiver that trickles bytes cannot hold it.
        limit = settings.connect_timeout_seconds + settings.read_timeout_seconds
        async with asyncio.timeout(limit):
            request = client.stream("POST", record.url, content=event.body, headers=headers)
            async with request as response:
                status_code = response.status_code
                excerpt = await _read_excerpt(response)
        error = _status_error(response, excerpt)
        if status_code in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
    except TimeoutError:
        error = f"no complete response within {limit:g} s"
    except httpx.HTTPError as exc:
        error = describe_http_error(exc, settings)
    duration_ms = (time.monotonic() - clock) * 1000
    return AttemptRecord(number, started_at, duration_ms, status_code, error), retry_after


async def _read_excerpt(response: httpx.Response) -> str:
    data = b""
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= DRAIN_BYTES:
            break
    return " ".join(data[:EXCERPT_BYTES].decode("utf-8", "replace").split())


def _status_error(response: httpx.Response, excerpt: str) -> str | None:
    status = response.status_code
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        location = response.headers.get("location")
        return f"HTTP {status}: redirect to {location!r} not followed"
    return f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}"


def describe_http_error(exc: httpx.HTTPError, settings: WebhookSettings) -> str:
    """Name a transport failure the way an operator searches for it."""
    import httpx

    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timed out after {settings.connect_timeout_seconds:g} s"
    if isinstance(exc, httpx.ReadTimeout):
        return f"read timed out after {settings.read_timeout_seconds:g} s"
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {detail}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"invalid HTTP response: {detail}"
    return f"request failed: {detail}"


def parse_retry_after(value: str | None) -> float | None:
    """Read a Retry-After header (seconds or an HTTP date) as seconds from now."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max(0.0, (moment - dt.datetime.now(dt.UTC)).total_seconds())


class LogThrottle:
    """Lets one log message per key through each interval and counts those held back."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def check(self, key: str) -> int | None:
        """Return None to hold a message back, else how many were held back since the last."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)
