"""Frame a run's events as Server-Sent Events, for the client that started it or one resuming it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import AppStatus
from starlette.types import Receive, Scope, Send

from mock_server.runs import (
    CLIENT_DISCONNECTED,
    EXECUTION_FAILED,
    Event,
    Pacing,
    RunEngine,
    RunPlan,
)

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DISCONNECT_MESSAGE = "The client disconnected before the stream ended."
SHUTDOWN_MESSAGE = "The server shut down before the run finished."
HEARTBEAT_COMMENT = "heartbeat"
# JSON leaves these three line separators unescaped, and line readers built on str.splitlines()
# (httpx's iter_lines among them) would split an event at them.
LINE_SEPARATORS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def frame(event_id: int, event: Event) -> ServerSentEvent:
    """Frame one event; its JSON has no raw line breaks, so any output text keeps the framing."""
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return ServerSentEvent(data=data.translate(LINE_SEPARATORS), id=str(event_id), sep="\n")


def heartbeat() -> ServerSentEvent:
    """Make a heartbeat: a comment line, which clients ignore and which carries no `id`."""
    return ServerSentEvent(comment=HEARTBEAT_COMMENT, sep="\n")


async def follow(
    plan: RunPlan, after: int, heartbeat_seconds: float
) -> AsyncIterator[ServerSentEvent]:
    """Send a run's events after id `after` as they come, and a heartbeat when none is due."""
    cursor = after
    while True:
        # Taken before sending, so an event added while a send is pending still wakes us.
        changed = plan.changed
        while cursor < len(plan.events):
            cursor += 1
            yield frame(cursor, plan.events[cursor - 1])
        if plan.run.is_finished and cursor >= len(plan.events):
            return
        try:
            async with asyncio.timeout(heartbeat_seconds):
                await changed.wait()
        except TimeoutError:
            yield heartbeat()


async def replay(events: list[Event], after: int) -> AsyncIterator[ServerSentEvent]:
    """Send the events of a finished run after id `after`, all at once."""
    for event_id in range(after + 1, len(events) + 1):
        yield frame(event_id, events[event_id - 1])


class EventStream(EventSourceResponse):
    """An event stream that calls `on_open` before it starts and `on_close` however it ends."""

    def __init__(
        self,
        events: AsyncIterator[ServerSentEvent],
        on_open: Callable[[], None],
        on_close: Callable[[], None],
    ) -> None:
        # sse-starlette's own pings would go out even while events flow; `follow` sends
        # heartbeats only when the stream is idle.
        super().__init__(events, headers=STREAM_HEADERS, ping=0, sep="\n")
        self._on_open = on_open
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._on_open()
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def owner_stream(
    engine: RunEngine, plan: RunPlan, pacing: Pacing, heartbeat_seconds: float
) -> EventStream:
    """Stream a new run to the client that started it; the run fails if that client goes away."""

    def on_open() -> None:
        engine.open_streams += 1
        engine.start(plan, pacing)

    def on_close() -> None:
        engine.open_streams -= 1
        if AppStatus.should_exit:
            engine.abandon(plan, EXECUTION_FAILED, SHUTDOWN_MESSAGE)
        else:
            engine.abandon(plan, CLIENT_DISCONNECTED, DISCONNECT_MESSAGE)

    return EventStream(follow(plan, 0, heartbeat_seconds), on_open, on_close)


def follower_stream(
    engine: RunEngine, plan: RunPlan, after: int, heartbeat_seconds: float
) -> EventStream:
    """Stream a run in flight from event `after`; this client leaving does not stop the run."""
    return EventStream(follow(plan, after, heartbeat_seconds), *_stream_counter(engine))


def replay_stream(engine: RunEngine, events: list[Event], after: int) -> EventStream:
    """Stream the events of a finished run from event `after`."""
    return EventStream(replay(events, after), *_stream_counter(engine))


def _stream_counter(engine: RunEngine) -> tuple[Callable[[], None], Callable[[], None]]:
    def on_open() -> None:
        engine.open_streams += 1

    def on_close() -> None:
        engine.open_streams -= 1

    return on_open, on_close
