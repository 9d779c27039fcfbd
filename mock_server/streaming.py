"""Frame and pace a run's output as Server-Sent Events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from mock_server.encoding import encode_json
from mock_server.runs import RunEngine, RunPlan

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DISCONNECT_MESSAGE = "The client disconnected before the stream ended."


def _event(event_id: int, payload: dict[str, Any]) -> ServerSentEvent:
    # JSON escapes CR and LF, so output text can never break the event framing.
    data = encode_json(payload).decode()
    return ServerSentEvent(data=data, id=str(event_id))


async def run_events(
    engine: RunEngine, plan: RunPlan, first_token_delay: float, token_delay: float
) -> AsyncIterator[ServerSentEvent]:
    """Yield the events of one run, updating the stored run as tokens go out."""
    run = plan.run
    finished = False
    try:
        yield _event(1, {"type": "start", "run_id": run.id, "flow_id": run.flow_id})
        await asyncio.sleep(first_token_delay)
        stop = plan.fail_after if plan.fail_after is not None else len(plan.tokens)
        for index in range(stop):
            if index:
                await asyncio.sleep(token_delay)
            engine.advance(plan, index + 1)
            content = plan.tokens[index]
            yield _event(index + 2, {"type": "token", "content": content, "run_id": run.id})
        if plan.fail_after is not None:
            engine.fail(plan, "FLOW_EXECUTION_FAILED", plan.failure_message)
            finished = True
            yield _event(stop + 2, {"type": "error", "run_id": run.id, "error": run.error})
        else:
            engine.complete(plan)
            finished = True
            usage = run.usage.to_json()
            yield _event(stop + 2, {"type": "end", "run_id": run.id, "usage": usage})
    finally:
        if not finished:
            engine.fail(plan, "CLIENT_DISCONNECTED", DISCONNECT_MESSAGE)


def stream_response(
    engine: RunEngine,
    plan: RunPlan,
    first_token_delay: float,
    token_delay: float,
    heartbeat_seconds: float,
) -> EventSourceResponse:
    """Answer with the run's event stream; heartbeat comments keep an idle stream open."""
    events = run_events(engine, plan, first_token_delay, token_delay)
    return EventSourceResponse(events, headers=STREAM_HEADERS, ping=heartbeat_seconds, sep="\n")
