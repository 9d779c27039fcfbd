"""The run lifecycle: start a run, produce its output, finish it as completed or failed."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from mock_server.errors import ApiError, field_error
from mock_server.events import EventBus
from mock_server.fixtures import FlowFixture, TokenFixture
from mock_server.records import MessageRecord, RunRecord, SessionRecord, UsageEntry, utc_now
from mock_server.replies import ReplyWriter, estimate_tokens, split_tokens
from mock_server.store import Store, new_id


@dataclass
class RunPlan:
    """What a run will produce: its tokens, and where it fails if it does."""

    run: RunRecord
    flow: FlowFixture
    tokens: list[str]
    fail_after: int | None
    failure_message: str


class RunEngine:
    """Creates runs and moves them through `running` to `completed` or `failed`."""

    def __init__(self, store: Store, seed: int, events: EventBus | None = None) -> None:
        self.store = store
        self.events = events or EventBus()
        self.writer = ReplyWriter(seed)
        self.rng = random.Random(seed)

    def find_flow(self, flow_id: str, token: TokenFixture) -> FlowFixture:
        """Return a flow the token may see, or raise 404 or 403."""
        flow = self.store.get_flow(flow_id)
        if flow is None:
            raise field_error(404, f"Flow {flow_id!r} not found.", "flow_id", "path", "not found")
        if flow.status == "draft" and flow.workspace != token.workspace:
            raise field_error(403, f"Flow {flow_id!r} is a draft of another workspace.",
                              "flow_id", "path", "draft flow of another workspace")
        return flow

    def plan(
        self, flow_id: str, token: TokenFixture, text: str, session_id: str | None
    ) -> RunPlan:
        """Check that the token may run the flow, then create the run in `running` state."""
        if token.read_only:
            raise ApiError(403, "This API token is read-only and cannot run flows.",
                           {"field": "Authorization", "location": "header",
                            "reason": "read-only token"})
        flow = self.find_flow(flow_id, token)
        if flow.status != "published":
            raise field_error(403, f"Flow {flow_id!r} is a draft; only published flows can run.",
                              "flow_id", "path", "flow is not published")
        session = self._session_for(session_id, flow) if session_id else None
        earlier = self._earlier_inputs(session)
        output = self.writer.write(flow, text, earlier)
        tokens = split_tokens(output)
        fail_after = self._failure_point(flow, len(tokens))
        prompt = flow.system_prompt_tokens + estimate_tokens(text) + sum(
            estimate_tokens(turn) for turn in earlier
        )
        run = RunRecord(
            id=new_id("run"),
            flow_id=flow.id,
            session_id=session.id if session else None,
            workspace=token.workspace,
            input=text,
            created_at=utc_now(),
        )
        run.usage.prompt_tokens = prompt
        self.store.add_run(run)
        self.events.emit("flow.run.started", _run_event_data(run))
        return RunPlan(run, flow, tokens, fail_after, flow.failure.message)

    def _session_for(self, session_id: str, flow: FlowFixture) -> SessionRecord:
        session = self.store.get_session(session_id)
        if session is None:
            raise field_error(404, f"Session {session_id!r} not found.", "/session_id", "body",
                              "not found")
        if session.flow_id != flow.id:
            raise field_error(
                400, f"Session {session_id!r} belongs to flow {session.flow_id!r}, not {flow.id!r}.",
                "/session_id", "body", "session belongs to another flow",
            )
        if session.status != "active":
            raise field_error(400, f"Session {session_id!r} has ended.", "/session_id", "body",
                              "session has ended")
        return session

    def _earlier_inputs(self, session: SessionRecord | None) -> list[str]:
        if session is None:
            return []
        messages, _ = self.store.list_messages(session.id)
        return [message.content for message in messages if message.role == "user"]

    def _failure_point(self, flow: FlowFixture, token_count: int) -> int | None:
        failure = flow.failure
        if failure.after_tokens is not None and failure.after_tokens < token_count:
            return failure.after_tokens
        if failure.rate > 0 and self.rng.random() < failure.rate:
            return self.rng.randrange(token_count) if token_count else 0
        return None

    def advance(self, plan: RunPlan, sent: int) -> None:
        """Record that `sent` tokens of the output have been produced."""
        run = plan.run
        run.output = "".join(plan.tokens[:sent])
        run.usage.completion_tokens = sent
        run.progress = 100 * sent // len(plan.tokens) if plan.tokens else 0
        self.store.save_run(run)

    def complete(self, plan: RunPlan, finished_at: dt.datetime | None = None) -> None:
        """Finish a run successfully and append its turn to its session."""
        self.advance(plan, len(plan.tokens))
        run = plan.run
        run.status = "completed"
        run.progress = 100
        self._finish(plan, finished_at)

    def fail(self, plan: RunPlan, code: str, message: str,
             finished_at: dt.datetime | None = None) -> None:
        """Finish a run with an error; its progress stays where it was."""
        run = plan.run
        run.status = "failed"
        run.error = {"code": code, "message": message}
        self._finish(plan, finished_at)

    def _finish(self, plan: RunPlan, finished_at: dt.datetime | None) -> None:
        run = plan.run
        run.completed_at = finished_at or utc_now()
        self.store.save_run(run)
        if run.session_id:
            messages = [MessageRecord(new_id("msg"), "user", run.input, run.created_at)]
            if run.status == "completed":
                messages.append(
                    MessageRecord(new_id("msg"), "assistant", run.output, run.completed_at)
                )
            self.store.add_messages(run.session_id, messages)
        data = _run_event_data(run)
        if run.status == "completed":
            data.update(output=run.output, usage=run.usage.to_json())
            self.events.emit("flow.run.completed", data)
        else:
            data.update(output=run.output, usage=run.usage.to_json(), error=run.error)
            self.events.emit("flow.run.failed", data)
        tokens = run.usage.prompt_tokens + run.usage.completion_tokens
        self.store.add_usage(
            UsageEntry(
                finished_at=run.completed_at,
                flow_id=run.flow_id,
                tokens=tokens,
                succeeded=run.status == "completed",
                duration=run.duration,
                cost=tokens * plan.flow.price_per_1k_tokens / 1000,
            )
        )

    def run_to_end(self, plan: RunPlan) -> RunRecord:
        """Produce a whole run at once, dated as if it had taken the flow's usual time."""
        latency = plan.flow.latency
        produced = plan.fail_after if plan.fail_after is not None else len(plan.tokens)
        elapsed_ms = latency.first_token_ms + latency.token_ms * produced
        finished_at = plan.run.created_at + dt.timedelta(milliseconds=max(1, elapsed_ms))
        if plan.fail_after is not None:
            self.advance(plan, plan.fail_after)
            self.fail(plan, "FLOW_EXECUTION_FAILED", plan.failure_message, finished_at)
        else:
            self.complete(plan, finished_at)
        return plan.run


def _run_event_data(run: RunRecord) -> dict[str, object]:
    return {
        "run_id": run.id,
        "flow_id": run.flow_id,
        "session_id": run.session_id,
        "status": run.status,
    }
