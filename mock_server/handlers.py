"""One handler per operationId of the public spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from broxi_mock.spec import Operation, Spec
from mock_server.analytics import usage_report
from mock_server.attended import run_attended
from mock_server.config import MockConfig
from mock_server.encoding import encode_json
from mock_server.errors import ApiError, field_error
from mock_server.fixtures import FlowFixture, TokenFixture
from mock_server.flowbodies import FlowBodies
from mock_server.records import SessionRecord, utc_now
from mock_server.routing import Handler, RequestContext
from mock_server.runs import Pacing, RunEngine, recorded_events
from mock_server.store import Store, new_id
from mock_server.streaming import follower_stream, owner_stream, replay_stream

EVENT_STREAM = "text/event-stream"
RUN_ID_HEADER = "X-Run-ID"
LAST_EVENT_ID_HEADER = "Last-Event-ID"
# Flow pages kept encoded; past this count the cache starts again, so its memory is bounded.
MAX_CACHED_PAGES = 256


def json_response(data: Any, status: int = 200) -> Response:
    """Encode `data` as a compact JSON response."""
    return Response(encode_json(data), status, media_type="application/json")


@dataclass
class Handlers:
    """The handlers of the public operations, sharing one store and run engine."""

    store: Store
    engine: RunEngine
    config: MockConfig
    base_url: str

    def __post_init__(self) -> None:
        self.flow_bodies = FlowBodies(self.base_url)
        # Encoded flow pages by (workspace, status, limit, offset). NOTE: flows come from the
        # fixtures and never change while the server runs; code that changes them must clear
        # this cache.
        self._pages: dict[tuple[str, str | None, int, int], bytes] = {}

    def table(self) -> dict[str, Handler]:
        return {
            "runFlow": self.run_flow,
            "streamFlow": self.stream_flow,
            "getRun": self.get_run,
            "listFlows": self.list_flows,
            "getFlow": self.get_flow,
            "createSession": self.create_session,
            "getSessionHistory": self.get_session_history,
            "getUsage": self.get_usage,
        }

    async def run_flow(self, context: RequestContext) -> Response:
        body = context.body or {}
        if body.get("stream"):
            # The body requests a stream explicitly, so the Accept header is not consulted.
            return await self._stream(context)
        if context.media_type != "application/json":
            raise _not_acceptable("application/json", "stream is false")
        if context.params.get(RUN_ID_HEADER) is not None:
            raise field_error(
                400,
                f"{RUN_ID_HEADER} resumes a stream; set stream to true.",
                RUN_ID_HEADER,
                "header",
                "only a stream can be resumed",
            )
        plan = self.engine.plan(
            context.params["flow_id"], context.token, body["input"], body.get("session_id")
        )
        run = await run_attended(
            self.engine, plan, self._pacing(plan.flow), context.request.receive
        )
        return json_response(run.to_json())

    async def stream_flow(self, context: RequestContext) -> Response:
        return await self._stream(context)

    async def _stream(self, context: RequestContext) -> Response:
        run_id = context.params.get(RUN_ID_HEADER)
        last_event = context.params.get(LAST_EVENT_ID_HEADER)
        if run_id is not None:
            return self._resume(context, run_id, int(last_event or 0))
        if last_event is not None:
            raise field_error(
                400,
                f"{LAST_EVENT_ID_HEADER} resumes a stream only together with "
                f"{RUN_ID_HEADER} naming the run.",
                RUN_ID_HEADER,
                "header",
                f"required with {LAST_EVENT_ID_HEADER}",
            )
        body = context.body or {}
        plan = self.engine.plan(
            context.params["flow_id"], context.token, body["input"], body.get("session_id")
        )
        pacing = self._pacing(plan.flow)
        return owner_stream(self.engine, plan, pacing, self.config.heartbeat_seconds)

    def _resume(self, context: RequestContext, run_id: str, after: int) -> Response:
        plan = self.engine.live.get(run_id)
        run = plan.run if plan is not None else self.store.get_run(run_id)
        if run is None or run.workspace != context.token.workspace:
            raise field_error(
                404,
                f"Run {run_id!r} not found; only runs the server still keeps can be resumed.",
                RUN_ID_HEADER,
                "header",
                "not found",
            )
        flow_id = context.params["flow_id"]
        if run.flow_id != flow_id:
            raise field_error(
                400,
                f"Run {run_id!r} is a run of flow {run.flow_id!r}, not {flow_id!r}.",
                RUN_ID_HEADER,
                "header",
                "run of another flow",
            )
        events = plan.events if plan is not None else recorded_events(run)
        if after > len(events):
            last = "last event so far" if plan is not None else "last event"
            raise field_error(
                400,
                f"{LAST_EVENT_ID_HEADER} {after} is after the {last} ({len(events)}) of "
                f"run {run_id!r}.",
                LAST_EVENT_ID_HEADER,
                "header",
                "no such event",
            )
        if plan is not None:
            return follower_stream(self.engine, plan, after, self.config.heartbeat_seconds)
        return replay_stream(self.engine, events, after)

    def _pacing(self, flow: FlowFixture) -> Pacing:
        if self.config.stream_delay_ms is not None:
            delay = self.config.stream_delay_ms / 1000
            return Pacing(delay, delay)
        return Pacing(flow.latency.first_token_ms / 1000, flow.latency.token_ms / 1000)

    async def get_run(self, context: RequestContext) -> Response:
        run_id = context.params["run_id"]
        run = self.engine.get_run(run_id)
        if run is None or run.workspace != context.token.workspace:
            raise field_error(404, f"Run {run_id!r} not found.", "run_id", "path", "not found")
        return json_response(run.to_json())

    async def list_flows(self, context: RequestContext) -> Response:
        params = context.params
        key = (context.token.workspace, params["status"], params["limit"], params["offset"])
        body = self._pages.get(key)
        if body is None:
            body = self._flow_page(context.token, *key[1:])
            if len(self._pages) >= MAX_CACHED_PAGES:
                self._pages.clear()
            self._pages[key] = body
        return Response(body, media_type="application/json")

    def _flow_page(self, token: TokenFixture, status: str | None, limit: int, offset: int) -> bytes:
        flows = [f for f in self.store.list_flows() if _is_visible(f, token)]
        if status is not None:
            flows = [flow for flow in flows if flow.status == status]
        flows.sort(key=lambda flow: (flow.created_at, flow.id))
        return self.flow_bodies.page(flows[offset : offset + limit], len(flows), limit, offset)

    async def get_flow(self, context: RequestContext) -> Response:
        flow = self.engine.find_flow(context.params["flow_id"], context.token)
        return Response(self.flow_bodies.detail(flow), media_type="application/json")

    async def create_session(self, context: RequestContext) -> Response:
        body = context.body or {}
        if context.token.read_only:
            raise ApiError(
                403,
                "This API token is read-only and cannot create sessions.",
                {"field": "Authorization", "location": "header", "reason": "read-only token"},
            )
        flow_id = body["flow_id"]
        if self.store.get_flow(flow_id) is None:
            raise field_error(404, f"Flow {flow_id!r} not found.", "/flow_id", "body", "not found")
        flow = self.engine.find_flow(flow_id, context.token)
        session = SessionRecord(
            id=new_id("session"),
            flow_id=flow.id,
            user_id=body.get("user_id"),
            created_at=utc_now(),
            metadata=body.get("metadata") or {},
            workspace=context.token.workspace,
        )
        self.store.add_session(session)
        self.engine.events.emit(
            "session.created",
            {
                "session_id": session.id,
                "flow_id": session.flow_id,
                "user_id": session.user_id,
                "status": session.status,
            },
        )
        return json_response(session.to_json(), 201)

    async def get_session_history(self, context: RequestContext) -> Response:
        session_id = context.params["session_id"]
        session = self.store.get_session(session_id)
        if session is None or session.workspace != context.token.workspace:
            raise field_error(
                404, f"Session {session_id!r} not found.", "session_id", "path", "not found"
            )
        limit, offset = context.params["limit"], context.params["offset"]
        messages, total = self.store.list_messages(session_id, offset, limit)
        return json_response(
            {
                "session_id": session_id,
                "messages": [message.to_json() for message in messages],
                "total": total,
                "limit": limit,
                "offset": offset,
            }
        )

    async def get_usage(self, context: RequestContext) -> Response:
        params = context.params
        report = usage_report(
            self.store.list_usage(context.token.workspace),
            params["start_date"],
            params["end_date"],
            params["flow_id"],
            params["granularity"] or "day",
        )
        return json_response(report)


def _is_visible(flow: FlowFixture, token: TokenFixture) -> bool:
    return flow.status == "published" or flow.workspace == token.workspace


def _not_acceptable(media_type: str, reason: str) -> ApiError:
    return ApiError(
        406,
        f"This request can only be answered with {media_type} ({reason}); "
        "adjust the Accept header.",
        {
            "field": "Accept",
            "location": "header",
            "reason": "no acceptable media type",
            "allowed": [media_type],
        },
    )


def example_handler(spec: Spec) -> Any:
    """Make handlers that answer an operation with the first example of its success response."""

    def build(operation: Operation) -> Handler:
        status, body = _first_example(spec, operation)

        async def answer(context: RequestContext) -> Response:
            if status == 204:
                return Response(status_code=204)
            return json_response(body, status)

        return answer

    return build


def _first_example(spec: Spec, operation: Operation) -> tuple[int, Any]:
    for status, response in (operation.definition.get("responses") or {}).items():
        if not str(status).startswith("2"):
            continue
        media = (spec.resolve(response).get("content") or {}).get("application/json") or {}
        if "example" in media:
            return int(status), media["example"]
        for example in (media.get("examples") or {}).values():
            return int(status), spec.resolve(example).get("value")
        schema = spec.resolve(media.get("schema") or {})
        if schema.get("examples"):
            return int(status), schema["examples"][0]
        return int(status), None
    return 204, None
