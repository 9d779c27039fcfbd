"""Values kept by the store: runs, sessions, messages and usage entries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any, Literal

RunStatus = Literal["running", "completed", "failed"]


def utc_now() -> dt.datetime:
    """Return the current time in UTC, to the millisecond."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_timestamp(value: dt.datetime) -> str:
    """Format a timestamp as RFC 3339 in UTC with a `Z` suffix."""
    value = value.astimezone(dt.UTC)
    text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text.removesuffix("+00:00") + "Z"


@dataclass
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


@dataclass
class RunRecord:
    """One run of a flow, running or finished."""

    id: str
    flow_id: str
    session_id: str | None
    workspace: str
    input: str
    created_at: dt.datetime
    status: RunStatus = "running"
    progress: int = 0
    output: str = ""
    error: dict[str, str] | None = None
    completed_at: dt.datetime | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)

    @property
    def duration(self) -> float:
        """Return the run's duration in seconds (0 while it runs)."""
        if self.completed_at is None:
            return 0.0
        return (self.completed_at - self.created_at).total_seconds()

    @property
    def is_finished(self) -> bool:
        """Return whether the run has completed or failed."""
        return self.status != "running"

    def copy(self) -> RunRecord:
        """Return a copy that later changes to this run do not reach."""
        usage = TokenUsage(self.usage.prompt_tokens, self.usage.completion_tokens)
        error = dict(self.error) if self.error is not None else None
        return replace(self, usage=usage, error=error)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "flow_id": self.flow_id,
            "session_id": self.session_id,
            "status": self.status,
            "progress": self.progress,
            "output": self.output,
            "error": self.error,
            "created_at": format_timestamp(self.created_at),
            "completed_at": format_timestamp(self.completed_at) if self.completed_at else None,
            "usage": self.usage.to_json(),
        }


@dataclass
class MessageRecord:
    id: str
    role: Literal["user", "assistant"]
    content: str
    timestamp: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "content": self.content,
            "timestamp": format_timestamp(self.timestamp),
        }


@dataclass
class SessionRecord:
    """A conversation session; its messages are kept by the store."""

    id: str
    flow_id: str
    user_id: str | None
    created_at: dt.datetime
    metadata: dict[str, Any]
    status: Literal["active", "ended"] = "active"
    # The workspace that owns the session; tokens of other workspaces get a 404. Not shown.
    workspace: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "flow_id": self.flow_id,
            "user_id": self.user_id,
            "status": self.status,
            "created_at": format_timestamp(self.created_at),
            "metadata": self.metadata,
        }


@dataclass(frozen=True)
class UsageEntry:
    """Finished runs as analytics count them: one run, or the runs of one flow in one hour."""

    finished_at: dt.datetime
    workspace: str
    flow_id: str
    runs: int
    successful: int
    tokens: int
    duration: float
    cost: float
