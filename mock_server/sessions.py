"""The end of a session: ended by the client, or by itself after being idle too long."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from mock_server.errors import ApiError, field_error
from mock_server.events import EventBus
from mock_server.records import SessionRecord
from mock_server.store import Store

logger = logging.getLogger("broxi_mock.sessions")
EndReason = Literal["ended_by_client", "idle_timeout"]
# The idle check runs this many times per timeout, clamped to these intervals in seconds.
CHECKS_PER_TIMEOUT = 4
MIN_CHECK_SECONDS = 0.01
MAX_CHECK_SECONDS = 5.0


class SessionLifecycle:
    """Ends sessions and emits `session.ended`; tracks activity to end idle sessions."""

    def __init__(
        self,
        store: Store,
        events: EventBus,
        idle_timeout: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.events = events
        self.idle_timeout = idle_timeout
        self.clock = clock
        self._last_active: dict[str, float] = {}
        self._running: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        events.subscribe(self._observe)
        self.reset()

    def reset(self) -> None:
        """Forget all activity, then count the active fixture sessions as active from now."""
        self._last_active.clear()
        self._running.clear()
        # NOTE: with --state, active sessions created by an earlier server process are not
        # watched until a run uses them, so until then they never end by themselves.
        fixtures = self.store.fixtures.sessions
        self.track(session.id for session in fixtures if session.status == "active")

    def track(self, session_ids: Iterable[str]) -> None:
        """Count sessions as active from now, unless they are already watched."""
        now = self.clock()
        for session_id in session_ids:
            self._last_active.setdefault(session_id, now)

    def end(self, session_id: str, reason: EndReason) -> SessionRecord:
        """End an active session and emit `session.ended`; raises 404 or 409 otherwise."""
        session = self.store.get_session(session_id)
        if session is None:
            raise field_error(
                404, f"Session {session_id!r} not found.", "session_id", "path", "not found"
            )
        if session.status != "active":
            raise field_error(
                409,
                f"Session {session_id!r} has already ended.",
                "session_id",
                "path",
                "session has already ended",
            )
        session.status = "ended"
        self.store.save_session(session)
        self.events.emit(
            "session.ended",
            {
                "session_id": session.id,
                "flow_id": session.flow_id,
                "user_id": session.user_id,
                "status": session.status,
                "reason": reason,
            },
        )
        return session

    def _observe(self, event: str, data: dict[str, Any]) -> None:
        session_id = data.get("session_id")
        if not isinstance(session_id, str):
            return
        if event == "session.ended":
            self._last_active.pop(session_id, None)
            self._running.pop(session_id, None)
            return
        self._last_active[session_id] = self.clock()
        if event == "flow.run.started":
            self._running[session_id] = self._running.get(session_id, 0) + 1
        elif event in ("flow.run.completed", "flow.run.failed"):
            left = self._running.get(session_id, 0) - 1
            if left > 0:
                self._running[session_id] = left
            else:
                self._running.pop(session_id, None)

    def end_idle_sessions(self) -> list[str]:
        """End every active session idle for the timeout with no run in flight; return ids."""
        if self.idle_timeout is None:
            return []
        cutoff = self.clock() - self.idle_timeout
        idle = [
            session_id
            for session_id, last in self._last_active.items()
            if last <= cutoff and session_id not in self._running
        ]
        ended = []
        for session_id in idle:
            try:
                self.end(session_id, "idle_timeout")
                ended.append(session_id)
            except ApiError:
                # The session is gone or has ended another way, so there is nothing left to watch.
                self._last_active.pop(session_id, None)
        return ended

    async def start(self) -> None:
        """Start looking for idle sessions in the background, when a timeout is set."""
        if self.idle_timeout is not None and self._task is None:
            self._task = asyncio.create_task(self._watch(self.idle_timeout))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self, timeout: float) -> None:
        interval = min(MAX_CHECK_SECONDS, max(MIN_CHECK_SECONDS, timeout / CHECKS_PER_TIMEOUT))
        while True:
            await asyncio.sleep(interval)
            ended = self.end_idle_sessions()
            if ended:
                logger.info("Ended %d idle session(s): %s.", len(ended), ", ".join(ended))
