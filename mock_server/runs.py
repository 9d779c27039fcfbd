"""The run lifecycle: start a run, produce its output over time, finish it completed or failed."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from mock_server.errors import ApiError, field_error
from mock_server.events import EventBus
from mock_server.fixtures import FlowFixture, TokenFixture
from mock_server.records import MessageRecord, RunRecord, SessionRecord, utc_now
from mock_server.replies import ReplyWriter, estimate_tokens, split_tokens
from mock_server.store import Store, new_id

logger = logging.getLogger("broxi_mock.runs")

EXECUTION_FAILED = "FLOW_EXECUTION_FAILED"
CLIENT_DISCONNECTED = "CLIENT_DISCONNECTED"
INTERNAL_FAILURE_MESSAGE = "The mock server failed while producing the run's output."

Event = dict[str, Any]


@dataclass(frozen=True)
class Pacing:
    """When a run's output appears: seconds before the first token and between tokens."""

    first_token: float
    between_tokens: float


@dataclass(eq=False)
class RunPlan:
    """A run in flight: the tokens it will produce, where it fails, and its events so far.

    The event with id N is `events[N - 1]`. A stream waits for the next event with
    `next_change()`; the event it returns is set when that event is added.
    """

    run: RunRecord
    flow: FlowFixture
    tokens: list[str]
    fail_after: int | None
    failure_message: str
    generation: int
    events: list[Event] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def stop(self) -> int:
        """Return how many tokens the run produces before it completes or fails."""
        return self.fail_after if self.fail_after is not None else len(self.tokens)

    # Made only when a stream waits: no reader waits on a plain run between its tokens.
    _changed: asyncio.Event | None = field(default=None, repr=False)

    def next_change(self) -> asyncio.Event:
        """Return the event that is set when the run's next event is added."""
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def add_event(self, event: Event) -> None:
        """Record the run's next event and wake every stream that follows the run."""
        self.events.append(event)
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()


class RunEngine:
    """Creates runs and moves them through `running` to `completed` or `failed`.

    Runs in flight are kept in `live` until they finish; their stored copy is written when
    they start and when they finish.
    """

    def __init__(self, store: Store, seed: int, events: EventBus | None = None) -> None:
        self.store = store
        self.seed = seed
        self.events = events or EventBus()
        self.writer = ReplyWriter(seed)
        self.rng = random.Random(seed)
        self.live: dict[str, RunPlan] = {}
        self.generation = 0
        self.open_streams = 0

    def reset(self) -> None:
        """Reset the store to the fixtures; runs in flight finish without being stored."""
        self.generation += 1
        self.live.clear()
        self.rng = random.Random(self.seed)
        self.store.reset()

    def find_flow(self, flow_id: str, token: TokenFixture) -> FlowFixture:
        """Return a flow the token may see, or raise 404 or 403."""
        flow = self.store.get_flow(flow_id)
        if flow is None:
            raise field_error(404, f"Flow {flow_id!r} not found.", "flow_id", "path", "not found")
        if flow.status == "draft" and flow.workspace != token.workspace:
            raise field_error(
                403,
                f"Flow {flow_id!r} is a draft of another workspace.",
                "flow_id",
                "path",
                "draft flow of another workspace",
            )
        return flow

    def stop_all(self, message: str) -> None:
        """Fail every run still in flight, as the server stops."""
        for plan in list(self.live.values()):
            self.abandon(plan, EXECUTION_FAILED, message)

    def get_run(self, run_id: str) -> RunRecord | None:
        """Return a copy of a run, with the progress and output so far while it runs."""
        plan = self.live.get(run_id)
        if plan is not None:
            return plan.run.copy()
        return self.store.get_run(run_id)

    def plan(self, flow_id: str, token: TokenFixture, text: str, session_id: str | None) -> RunPlan:
        """Check that the token may run the flow, then create the run in `running` state."""
        flow = self._runnable_flow(flow_id, token)
        session = self._session_for(session_id, flow, token) if session_id else None
        earlier = self._earlier_inputs(session)
        tokens = split_tokens(self.writer.write(flow, text, earlier))

        run = RunRecord(
            id=new_id("run"),
            flow_id=flow.id,
            session_id=session.id if session else None,
            workspace=token.workspace,
            input=text,
            created_at=utc_now(),
        )
        run.usage.prompt_tokens = flow.system_prompt_tokens + sum(
            estimate_tokens(turn) for turn in [*earlier, text]
        )
        fail_after = self._failure_point(flow, len(tokens))
        plan = RunPlan(run, flow, tokens, fail_after, flow.failure.message, self.generation)

        question = [MessageRecord(new_id("msg"), "user", text, run.created_at)] if session else []
        self.store.add_run(run, question)
        self.live[run.id] = plan
        self.events.emit("flow.run.started", _run_event_data(run))
        plan.add_event(start_event(run))
        return plan

    def _runnable_flow(self, flow_id: str, token: TokenFixture) -> FlowFixture:
        if token.read_only:
            raise ApiError(
                403,
                "This API token is read-only and cannot run flows.",
                {"field": "Authorization", "location": "header", "reason": "read-only token"},
            )
        flow = self.find_flow(flow_id, token)
        if flow.status != "published":
            raise field_error(
                403,
                f"Flow {flow_id!r} is a draft; only published flows can run.",
                "flow_id",
                "path",
                "flow is not published",
            )
        return flow

    def _session_for(
        self, session_id: str, flow: FlowFixture, token: TokenFixture
    ) -> SessionRecord:
        session = self.store.get_session(session_id)
        # Another workspace's session is not found, as its runs are not.
        if session is None or session.workspace != token.workspace:
            raise field_error(
                404, f"Session {session_id!r} not found.", "/session_id", "body", "not found"
            )
        if session.flow_id != flow.id:
            message = (
                f"Session {session_id!r} belongs to flow {session.flow_id!r}, not {flow.id!r}."
            )
            raise field_error(
                400, message, "/session_id", "body", "session belongs to another flow"
            )
        if session.status != "active":
            raise field_error(
                400,
                f"Session {session_id!r} has ended.",
                "/session_id",
                "body",
                "session has ended",
            )
        return session

    def _earlier_inputs(self, session: SessionRecord | None) -> list[str]:
        if session is None:
            return []
        messages, _ = self.store.list_messages(session.id)
        return [message.content for message in messages if message.role == "user"]

    def _failure_point(self, flow: FlowFixture, token_count: int) -> int | None:
        # Random failures draw from the server's seeded generator, so a seed replays them.
        failure = flow.failure
        if failure.after_tokens is not None:
            return min(failure.after_tokens, token_count)
        if failure.rate > 0 and self.rng.random() < failure.rate:
            return self.rng.randrange(token_count) if token_count else 0
        return None

    def start(self, plan: RunPlan, pacing: Pacing) -> None:
        """Produce a run's output in a background task."""
        plan.task = asyncio.get_running_loop().create_task(self.produce(plan, pacing))

    async def run_to_end(self, plan: RunPlan, pacing: Pacing) -> RunRecord:
        """Produce a run's output at its pace and return the finished run."""
        try:
            await self.produce(plan, pacing, stream_tokens=False)
        finally:
            # Reached with the run still going only when the request is cancelled.
            self.abandon(plan, EXECUTION_FAILED, "The request was cancelled before the run ended.")
        return plan.run.copy()

    async def produce(self, plan: RunPlan, pacing: Pacing, stream_tokens: bool = True) -> None:
        """Add the run's tokens at the given pace, then finish it; stop once it has finished.

        With `stream_tokens` false and no pacing, nothing can follow the run before it ends,
        so its output is added at once, without an event per token.
        """
        try:
            if stream_tokens or pacing.first_token or pacing.between_tokens:
                await self._advance_paced(plan, pacing)
            else:
                self._advance_all(plan)
            if plan.run.is_finished:
                return
            if plan.fail_after is not None:
                self.fail(plan, EXECUTION_FAILED, plan.failure_message)
            else:
                self.complete(plan)
        except Exception:
            logger.exception("Run %s failed inside the mock server.", plan.run.id)
            self.fail(plan, EXECUTION_FAILED, INTERNAL_FAILURE_MESSAGE)

    async def _advance_paced(self, plan: RunPlan, pacing: Pacing) -> None:
        # Unpaced runs (pacing 0) do not yield to the event loop between tokens: each
        # yield is a pass through the loop, which cost more than producing the token.
        if pacing.first_token:
            await asyncio.sleep(pacing.first_token)
        for index in range(plan.stop):
            if index and pacing.between_tokens:
                await asyncio.sleep(pacing.between_tokens)
            if plan.run.is_finished:
                return
            self._advance(plan, index + 1)

    def _advance_all(self, plan: RunPlan) -> None:
        # A stream attaches to a live run only between two awaits, and this run has none.
        run = plan.run
        stop = plan.stop
        if stop:
            run.output += "".join(plan.tokens[:stop])
            run.usage.completion_tokens = stop
            run.progress = 100 * stop // len(plan.tokens)

    def _advance(self, plan: RunPlan, sent: int) -> None:
        run = plan.run
        run.output += plan.tokens[sent - 1]
        run.usage.completion_tokens = sent
        run.progress = 100 * sent // len(plan.tokens)
        plan.add_event(token_event(run, plan.tokens[sent - 1]))

    def complete(self, plan: RunPlan) -> None:
        """Finish a run successfully and append its reply to its session."""
        if plan.run.is_finished:
            return
        plan.run.status = "completed"
        plan.run.progress = 100
        self._finish(plan)

    def fail(self, plan: RunPlan, code: str, message: str) -> None:
        """Finish a run with an error; its progress and output stay where they were."""
        if plan.run.is_finished:
            return
        plan.run.status = "failed"
        plan.run.error = {"code": code, "message": message}
        self._finish(plan)

    def abandon(self, plan: RunPlan, code: str, message: str) -> None:
        """Fail a run that is still going and stop producing its output at once."""
        self.fail(plan, code, message)
        if plan.task is not None and not plan.task.done():
            plan.task.cancel()

    def _finish(self, plan: RunPlan) -> None:
        run = plan.run
        run.completed_at = utc_now()
        # A run that began before a reset is not stored: the store no longer has its session.
        if plan.generation == self.generation:
            reply = []
            if run.session_id and run.status == "completed":
                reply = [MessageRecord(new_id("msg"), "assistant", run.output, run.completed_at)]
            self.store.save_run(run, reply)
            self.live.pop(run.id, None)
        # The final event goes out after the store write, so a client that saw it can read
        # the finished run back.
        plan.add_event(end_event(run) if run.status == "completed" else error_event(run))
        data = {**_run_event_data(run), "output": run.output, "usage": run.usage.to_json()}
        if run.status == "completed":
            self.events.emit("flow.run.completed", data)
        else:
            self.events.emit("flow.run.failed", {**data, "error": run.error})


def start_event(run: RunRecord) -> Event:
    return {"type": "start", "run_id": run.id, "flow_id": run.flow_id}


def token_event(run: RunRecord, content: str) -> Event:
    return {"type": "token", "content": content, "run_id": run.id}


def end_event(run: RunRecord) -> Event:
    return {"type": "end", "run_id": run.id, "usage": run.usage.to_json()}


def error_event(run: RunRecord) -> Event:
    return {"type": "error", "run_id": run.id, "error": run.error}


def recorded_events(run: RunRecord) -> list[Event]:
    """Rebuild the events of a stored run: its tokens split again, then `end` or `error`."""
    events = [start_event(run)]
    events += [token_event(run, token) for token in split_tokens(run.output)]
    if run.status == "completed":
        events.append(end_event(run))
    elif run.status == "failed":
        events.append(error_event(run))
    return events


def _run_event_data(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "flow_id": run.flow_id,
        "session_id": run.session_id,
        "status": run.status,
    }
