"""The request journal: the last N requests and their responses, for `GET /_mock/requests`."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

from mock_server.chaos import ChaosDraw
from mock_server.errors import ApiError

DEFAULT_JOURNAL_SIZE = 200


@dataclass(slots=True)
class JournalEntry:
    """One request and its response, converted to JSON only when the journal is read."""

    sequence: int
    request_id: str
    method: str
    path: str
    query: str
    status: int
    started_at: float
    duration_ms: float
    operation_id: str | None
    token: str | None
    origin: str | None
    prefer: str | None
    chaos: ChaosDraw | None
    error: ApiError | None

    def to_json(self) -> dict[str, Any]:
        started = dt.datetime.fromtimestamp(self.started_at, dt.UTC)
        return {
            "sequence": self.sequence,
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "started_at": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "duration_ms": round(self.duration_ms, 3),
            "operation_id": self.operation_id,
            "token": self.token,
            "origin": self.origin,
            "prefer": self.prefer,
            "chaos": self.chaos.to_json() if self.chaos is not None else None,
            "error_code": self.error.code if self.error is not None else None,
            "problems": problems_of(self.error),
        }


def problems_of(error: ApiError | None) -> list[dict[str, Any]]:
    """List what was wrong with a request, as the error's details name it."""
    if error is None or not isinstance(error.details, dict):
        return []
    details = error.details
    listed = details.get("errors")
    if isinstance(listed, list):
        return [dict(problem) for problem in listed if isinstance(problem, dict)]
    if "reason" not in details:
        return []
    keys = ("field", "location", "reason")
    return [{key: details[key] for key in keys if key in details}]


class RequestJournal:
    """A bounded ring of the latest requests; the oldest entry leaves when a new one arrives."""

    def __init__(self, size: int = DEFAULT_JOURNAL_SIZE) -> None:
        self.size = size
        self._entries: deque[JournalEntry] = deque(maxlen=size)
        self._sequence = itertools.count(1)
        self.recorded = 0

    def next_sequence(self) -> int:
        """Return the number of the next request, counting from 1 since start-up."""
        return next(self._sequence)

    def record(self, entry: JournalEntry) -> None:
        if self.size:
            self._entries.append(entry)
        self.recorded += 1

    def latest(self, limit: int | None = None) -> list[JournalEntry]:
        """Return up to `limit` entries, newest first."""
        entries = list(reversed(self._entries))
        return entries if limit is None else entries[:limit]

    def clear(self) -> None:
        """Forget every entry; sequence numbers keep counting."""
        self._entries.clear()
