"""State-change events (run started, completed, failed; session created, ended).

The run engine and handlers emit events here; webhook delivery subscribes to them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal, get_args

logger = logging.getLogger("broxi_mock.events")

EventType = Literal[
    "flow.run.started",
    "flow.run.completed",
    "flow.run.failed",
    "session.created",
    "session.ended",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
Listener = Callable[[str, dict[str, Any]], None]


class EventBus:
    """Calls every subscribed listener with each event, in the order events happen."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: str, data: dict[str, Any]) -> None:
        """Send one event to every listener; a listener that raises is logged, not propagated."""
        for listener in self._listeners:
            try:
                listener(event, data)
            except Exception:
                logger.exception("Listener %r failed on event %s.", listener, event)
