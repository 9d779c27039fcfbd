"""Sign, deliver and retry webhook events to the registered endpoints.

Delivery runs in the background on the server's event loop, so it never slows or fails the
API response whose state change caused the event. Each endpoint gets the events of one run (or
one session) in order: they wait in a lane that sends one delivery at a time, retries included,
while different runs and sessions are delivered concurrently.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from broxi_mock import __version__
from broxi_mock.webhook_contract import mask_secret
from mock_server.deliveries import (
    AttemptRecord,
    DeliveryLog,
    DeliveryRecord,
    DeliveryStatus,
    build_event,
    new_delivery,
)
from mock_server.events import EVENT_TYPES, EventBus
from mock_server.records import format_timestamp, utc_now
from mock_server.webhook_http import LogThrottle, post_signed
from mock_server.webhook_settings import WebhookSettings

logger = logging.getLogger("broxi_mock.webhooks")
USER_AGENT = f"broxi-mock/{__version__}"
# Deliveries still pending at shutdown are listed one per log line up to this count.
MAX_LISTED_AT_SHUTDOWN = 20

# httpx and standardwebhooks are imported when the first endpoint is registered or the first
# delivery is sent, so that a server with no webhook endpoint never loads them.
if TYPE_CHECKING:
    import httpx
    from standardwebhooks.webhooks import Webhook


@dataclass
class WebhookEndpoint:
    """A URL that receives the events it subscribed to, signed with its secret."""

    id: str
    url: str
    events: tuple[str, ...] | None
    secret: str = field(repr=False)
    own_secret: bool
    created_at: dt.datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        from standardwebhooks.webhooks import Webhook

        self.signer: Webhook = Webhook(self.secret)

    def wants(self, event_type: str) -> bool:
        return self.events is None or event_type in self.events

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events or EVENT_TYPES),
            "secret": mask_secret(self.secret),
            "own_secret": self.own_secret,
            "created_at": format_timestamp(self.created_at),
        }


class WebhookDispatcher:
    """Turns bus events into deliveries and sends them with retries, in order per lane."""

    def __init__(self, settings: WebhookSettings, seed: int = 0) -> None:
        self.settings = settings
        self.endpoints: dict[str, WebhookEndpoint] = {}
        self.log = DeliveryLog(settings.max_deliveries)
        self._rng = random.Random(seed)
        self._throttle = LogThrottle(interval=10.0)
        self._lanes: dict[tuple[str, str], deque[DeliveryRecord]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._backlog: list[DeliveryRecord] = []
        self._pending = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None
        self._stopping = False
        for endpoint in settings.endpoints:
            self.add_endpoint(endpoint.url, endpoint.events, endpoint.secret)

    def attach(self, bus: EventBus) -> None:
        """Deliver every event of `bus` from now on."""
        bus.subscribe(self.publish)

    def add_endpoint(
        self, url: str, events: Sequence[str] | None, secret: str | None
    ) -> WebhookEndpoint:
        """Register an endpoint; `events` None means every event, `secret` None the shared one."""
        endpoint = WebhookEndpoint(
            id=f"wh_{secrets.token_hex(8)}",
            url=url,
            events=tuple(events) if events is not None else None,
            secret=secret or self.settings.secret,
            own_secret=secret is not None,
        )
        self.endpoints[endpoint.id] = endpoint
        return endpoint

    def remove_endpoint(self, endpoint_id: str) -> bool:
        """Unregister an endpoint; its pending deliveries fail before their next attempt."""
        return self.endpoints.pop(endpoint_id, None) is not None

    def publish(self, event_type: str, data: dict[str, Any]) -> None:
        """Queue one delivery of the event per endpoint that subscribed to it."""
        targets = [endpoint for endpoint in self.endpoints.values() if endpoint.wants(event_type)]
        if not targets:
            return
        event = build_event(event_type, data)
        for endpoint in targets:
            self._submit(new_delivery(event, endpoint.id, endpoint.url))

    def redeliver(self, original: DeliveryRecord) -> DeliveryRecord:
        """Send a delivery's event again, with the same event id, as a new delivery."""
        record = new_delivery(original.event, original.endpoint_id, original.url, original.id)
        self._submit(record)
        return record

    def _submit(self, record: DeliveryRecord) -> None:
        loop = self._loop
        if loop is None or _running_loop() is loop:
            self._accept(record)
        else:
            loop.call_soon_threadsafe(self._accept, record)

    def _accept(self, record: DeliveryRecord) -> None:
        self.log.add(record)
        if self._stopping:
            self._finish(record, "failed", "the server was shutting down")
            return
        if self._pending >= self.settings.max_pending:
            limit = self.settings.max_pending
            record.finish("failed", f"the delivery queue is full (max_pending is {limit})")
            self._log_failure(record)
            return
        self._pending += 1
        if self._loop is None:
            self._backlog.append(record)
        else:
            self._enqueue(record)

    def _enqueue(self, record: DeliveryRecord) -> None:
        key = (record.endpoint_id, record.event.ordering_key)
        lane = self._lanes.get(key)
        if lane is not None:
            lane.append(record)
            return
        self._lanes[key] = deque([record])
        assert self._loop is not None
        task = self._loop.create_task(self._drain(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, key: tuple[str, str]) -> None:
        lane = self._lanes[key]
        try:
            while lane:
                record = lane[0]
                try:
                    await self._deliver(record)
                except Exception as exc:
                    # A bug here must not stall the lane: the delivery fails and the next goes.
                    logger.exception("Webhook delivery %s failed unexpectedly.", record.id)
                    self._finish(record, "failed", f"internal error: {exc!r}")
                lane.popleft()
        finally:
            del self._lanes[key]

    async def _deliver(self, record: DeliveryRecord) -> None:
        first_attempt = time.monotonic()
        for number in range(1, self.settings.max_attempts + 1):
            endpoint = self.endpoints.get(record.endpoint_id)
            if endpoint is None:
                self._finish(record, "failed", "the endpoint was removed before delivery")
                return
            attempt, retry_after = await self._attempt(endpoint, record, number)
            record.attempts.append(attempt)
            if attempt.succeeded:
                self._finish(record, "delivered")
                return
            delay = backoff_delay(self.settings, number, self._rng, retry_after)
            reason = self._give_up_reason(number, time.monotonic() - first_attempt + delay)
            if reason is not None:
                self._finish(record, "failed", f"{reason}; last error: {attempt.error}")
                self._log_failure(record)
                return
            record.next_attempt_at = utc_now() + dt.timedelta(seconds=delay)
            self._log_retry(record, delay)
            await asyncio.sleep(delay)

    async def _attempt(
        self, endpoint: WebhookEndpoint, record: DeliveryRecord, number: int
    ) -> tuple[AttemptRecord, float | None]:
        if self._slots is None:
            raise RuntimeError("webhook delivery has not been started")
        if self._client is None:
            self._client = self._new_client()
        # The slot is taken before the attempt's clock starts, so waiting for one is not timed.
        async with self._slots:
            return await post_signed(self._client, endpoint.signer, record, number, self.settings)

    def _give_up_reason(self, number: int, next_start: float) -> str | None:
        settings = self.settings
        if number >= settings.max_attempts:
            return f"gave up after {number} attempt(s) (max_attempts)"
        if next_start > settings.retry_window_seconds:
            return (
                f"gave up after {number} attempt(s): the next one would start past the "
                f"{settings.retry_window_seconds:g} s retry window"
            )
        return None

    def _finish(
        self, record: DeliveryRecord, status: DeliveryStatus, error: str | None = None
    ) -> None:
        if record.status == "pending":
            self._pending -= 1
        record.finish(status, error)
        self.log.trim()

    def _log_retry(self, record: DeliveryRecord, delay: float) -> None:
        held_back = self._throttle.check(f"retry {record.endpoint_id}")
        if held_back is not None:
            logger.info(
                "Webhook %s (%s) to %s failed on attempt %d (%s); retrying in %.2f s.%s",
                record.event.id,
                record.event.type,
                loggable_url(record.url),
                len(record.attempts),
                record.attempts[-1].error,
                delay,
                _held_note(held_back),
            )

    def _log_failure(self, record: DeliveryRecord) -> None:
        held_back = self._throttle.check(f"failure {record.endpoint_id}")
        if held_back is not None:
            logger.error(
                "Webhook %s (%s) to %s failed: %s.%s",
                record.event.id,
                record.event.type,
                loggable_url(record.url),
                record.error,
                _held_note(held_back),
            )

    def _new_client(self) -> httpx.AsyncClient:
        import httpx

        settings = self.settings
        read = settings.read_timeout_seconds
        return httpx.AsyncClient(
            timeout=httpx.Timeout(read, connect=settings.connect_timeout_seconds, pool=None),
            limits=httpx.Limits(max_connections=settings.max_connections),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
            # NOTE: proxy variables (HTTP_PROXY and the like) are ignored so that deliveries to
            # 127.0.0.1 never go through a proxy. A receiver behind a proxy is unreachable.
            trust_env=False,
        )

    async def start(self) -> None:
        """Start delivering on the running event loop, beginning with events queued before."""
        settings = self.settings
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._stopping = False
        backlog, self._backlog = self._backlog, []
        for record in backlog:
            self._enqueue(record)
        if self.endpoints:
            logger.info("Delivering webhooks to %d endpoint(s).", len(self.endpoints))

    async def stop(self) -> None:
        """Give pending deliveries the grace period, then fail and log whatever remains."""
        self._stopping = True
        tasks = set(self._tasks)
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_seconds)
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.wait(unfinished, timeout=1.0)
        self._backlog.clear()
        remaining = self.log.pending()
        for record in remaining:
            attempts_made = len(record.attempts)
            error = f"the server shut down after {attempts_made} attempt(s)"
            self._finish(record, "failed", error)
        _log_remaining(remaining)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._loop = None


def backoff_delay(
    settings: WebhookSettings, number: int, rng: random.Random, retry_after: float | None = None
) -> float:
    """Return the seconds to wait after failed attempt `number`: exponential, equal jitter.

    The base doubles from `initial_retry_seconds` up to `max_retry_seconds`, and the wait is
    drawn between half the base and the base. A receiver's Retry-After lengthens it, up to
    `max_retry_seconds`.
    """
    base = min(settings.max_retry_seconds, settings.initial_retry_seconds * 2.0 ** (number - 1))
    delay = base / 2 + rng.uniform(0, base / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.max_retry_seconds))
    return delay


def _log_remaining(remaining: list[DeliveryRecord]) -> None:
    if not remaining:
        return
    logger.warning("Shutting down with %d webhook delivery(ies) not delivered.", len(remaining))
    for record in remaining[:MAX_LISTED_AT_SHUTDOWN]:
        logger.warning(
            "Not delivered: %s (%s) to %s after %d attempt(s).",
            record.event.id,
            record.event.type,
            loggable_url(record.url),
            len(record.attempts),
        )
    if len(remaining) > MAX_LISTED_AT_SHUTDOWN:
        logger.warning("... and %d more.", len(remaining) - MAX_LISTED_AT_SHUTDOWN)


def loggable_url(url: str) -> str:
    """Drop the user info and query of a URL, where credentials and tokens usually sit."""
    import httpx

    return str(httpx.URL(url).copy_with(username=None, password=None, query=None))


def _held_note(held_back: int) -> str:
    return f" ({held_back} similar message(s) held back)" if held_back else ""


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
