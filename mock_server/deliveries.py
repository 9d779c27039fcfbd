"""Webhook events, their deliveries to endpoints and the bounded log of delivery attempts."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from mock_server.records import format_timestamp, utc_now

DeliveryStatus = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True)
class WebhookEvent:
    """One event as sent: the body bytes are signed and sent unchanged on every attempt."""

    id: str
    type: str
    timestamp: dt.datetime
    body: bytes
    # Events with the same key reach an endpoint in the order they happened.
    ordering_key: str


def build_event(event_type: str, data: dict[str, Any]) -> WebhookEvent:
    """Wrap event data in the envelope of the spec's webhook payloads."""
    event_id = f"evt_{secrets.token_hex(12)}"
    timestamp = utc_now()
    envelope = {
        "id": event_id,
        "event": event_type,
        "timestamp": format_timestamp(timestamp),
        "data": data,
    }
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    # A run inside a session shares the session's key, so session.created, the session's runs
    # and session.ended arrive in the order they happened.
    key = data.get("session_id") or data.get("run_id") or event_id
    return WebhookEvent(event_id, event_type, timestamp, body, str(key))


@dataclass
class AttemptRecord:
    """One HTTP request of a delivery."""

    number: int
    started_at: dt.datetime
    duration_ms: float
    status_code: int | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "started_at": format_timestamp(self.started_at),
            "duration_ms": round(self.duration_ms, 1),
            "status_code": self.status_code,
            "error": self.error,
        }


@dataclass
class DeliveryRecord:
    """The delivery of one event to one endpoint, with every attempt made so far."""

    id: str
    event: WebhookEvent
    endpoint_id: str
    url: str
    created_at: dt.datetime = field(default_factory=utc_now)
    status: DeliveryStatus = "pending"
    attempts: list[AttemptRecord] = field(default_factory=list)
    error: str | None = None
    next_attempt_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    redelivery_of: str | None = None

    def finish(self, status: DeliveryStatus, error: str | None = None) -> None:
        self.status = status
        self.error = error
        self.next_attempt_at = None
        self.finished_at = utc_now()

    def to_json(self) -> dict[str, Any]:
        def optional(moment: dt.datetime | None) -> str | None:
            return format_timestamp(moment) if moment else None

        return {
            "id": self.id,
            "event_id": self.event.id,
            "event": self.event.type,
            "endpoint_id": self.endpoint_id,
            "url": self.url,
            "status": self.status,
            "error": self.error,
            "created_at": format_timestamp(self.created_at),
            "next_attempt_at": optional(self.next_attempt_at),
            "finished_at": optional(self.finished_at),
            "redelivery_of": self.redelivery_of,
            "attempts": [attempt.to_json() for attempt in self.attempts],
        }


def new_delivery(
    event: WebhookEvent, endpoint_id: str, url: str, redelivery_of: str | None = None
) -> DeliveryRecord:
    """Create a pending delivery with a fresh id."""
    delivery_id = f"dlv_{secrets.token_hex(8)}"
    return DeliveryRecord(delivery_id, event, endpoint_id, url, redelivery_of=redelivery_of)


class DeliveryLog:
    """Delivery records in creation order; the oldest finished ones are dropped past a bound."""

    def __init__(self, max_finished: int) -> None:
        self.max_finished = max_finished
        self._records: OrderedDict[str, DeliveryRecord] = OrderedDict()

    def add(self, record: DeliveryRecord) -> None:
        self._records[record.id] = record
        self.trim()

    def get(self, delivery_id: str) -> DeliveryRecord | None:
        return self._records.get(delivery_id)

    def pending(self) -> list[DeliveryRecord]:
        return [record for record in self._records.values() if record.status == "pending"]

    def trim(self) -> None:
        """Drop the oldest finished records beyond `max_finished`; pending ones always stay."""
        if len(self._records) <= self.max_finished:
            return
        finished = [rid for rid, record in self._records.items() if record.status != "pending"]
        for record_id in finished[: max(0, len(finished) - self.max_finished)]:
            del self._records[record_id]

    def search(
        self,
        status: str | None = None,
        event_id: str | None = None,
        endpoint_id: str | None = None,
    ) -> list[DeliveryRecord]:
        """List matching records, newest first."""
        found = []
        for record in reversed(self._records.values()):
            if status is not None and record.status != status:
                continue
            if event_id is not None and record.event.id != event_id:
                continue
            if endpoint_id is not None and record.endpoint_id != endpoint_id:
                continue
            found.append(record)
        return found
