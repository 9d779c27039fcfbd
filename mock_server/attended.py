"""A plain run tied to its request: it fails when the client leaves or the server stops."""

from __future__ import annotations

import asyncio

from sse_starlette.sse import AppStatus
from starlette.types import Receive

from mock_server.errors import client_gone
from mock_server.records import RunRecord
from mock_server.runs import CLIENT_DISCONNECTED, EXECUTION_FAILED, Pacing, RunEngine, RunPlan
from mock_server.streaming import SHUTDOWN_MESSAGE

DISCONNECT_MESSAGE = "The client disconnected before the run ended."
# How often a paced run checks whether the server is stopping; uvicorn waits for the request.
SHUTDOWN_POLL_SECONDS = 0.25
# A server sends nothing but `http.disconnect` once the body is read; stop reading after this
# many other messages rather than loop on them.
MAX_EXTRA_MESSAGES = 100


async def run_attended(
    engine: RunEngine, plan: RunPlan, pacing: Pacing, receive: Receive
) -> RunRecord:
    """Produce a plain run at its pace; raise a 499 when the client leaves before the end."""
    if not pacing.first_token and not pacing.between_tokens:
        # An unpaced run ends without yielding to the event loop, so nothing can stop it midway.
        return await engine.run_to_end(plan, pacing)
    engine.start(plan, pacing)
    watcher = asyncio.create_task(_client_left(receive))
    try:
        await _wait(engine, plan, watcher)
    finally:
        watcher.cancel()
        # Reached with the run still going only when the request is cancelled.
        engine.abandon(plan, EXECUTION_FAILED, "The request was cancelled before the run ended.")
    return plan.run.copy()


async def _wait(engine: RunEngine, plan: RunPlan, watcher: asyncio.Task[None]) -> None:
    task = plan.task
    assert task is not None
    while not task.done():
        done, _ = await asyncio.wait(
            {task, watcher}, timeout=SHUTDOWN_POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        if watcher in done:
            engine.abandon(plan, CLIENT_DISCONNECTED, DISCONNECT_MESSAGE)
            raise client_gone("The client closed the connection before the run ended.")
        if AppStatus.should_exit:
            engine.abandon(plan, EXECUTION_FAILED, SHUTDOWN_MESSAGE)
            return


async def _client_left(receive: Receive) -> None:
    for _ in range(MAX_EXTRA_MESSAGES):
        message = await receive()
        if message["type"] == "http.disconnect":
            return
    # Never done: the run ends by itself or at shutdown.
    await asyncio.get_running_loop().create_future()
