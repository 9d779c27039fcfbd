"""Handlers of the admin operations under /_mock/ (see openapi/admin.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from broxi_mock.spec import Spec
from mock_server.handlers import json_response
from mock_server.journal import RequestJournal
from mock_server.ratelimit import RateLimiter
from mock_server.routing import Handler, RequestContext
from mock_server.runs import RunEngine
from mock_server.store import Store


@dataclass
class AdminHandlers:
    """Inspect and reset the mock's state; these operations need no token."""

    store: Store
    limiter: RateLimiter
    public_spec: Spec
    journal: RequestJournal
    engine: RunEngine

    def table(self) -> dict[str, Handler]:
        return {
            "getPublicSpec": self.get_public_spec,
            "listRequests": self.list_requests,
            "clearRequests": self.clear_requests,
            "resetState": self.reset_state,
            "getState": self.get_state,
        }

    async def get_public_spec(self, context: RequestContext) -> Response:
        document: dict[str, Any] = self.public_spec.document
        return json_response(document)

    async def list_requests(self, context: RequestContext) -> Response:
        limit = context.params["limit"]
        entries = self.journal.latest(limit)
        return json_response(
            {
                "requests": [entry.to_json() for entry in entries],
                "size": self.journal.size,
                "recorded": self.journal.recorded,
            }
        )

    async def clear_requests(self, context: RequestContext) -> Response:
        self.journal.clear()
        return Response(status_code=204)
    async def reset_state(self, context: RequestContext) -> Response:
        self.engine.reset()
        self.limiter.reset()
        return json_response(self._state())

    async def get_state(self, context: RequestContext) -> Response:
        return json_response(self._state())

    def _state(self) -> dict[str, Any]:
        runs: dict[str, int] = self.store.count_runs()
        sessions: dict[str, int] = self.store.count_sessions()
        return {
            "backend": self.store.backend,
            "max_runs": self.store.max_runs,
            "runs": {**runs, "total": sum(runs.values())},
            "sessions": {**sessions, "total": sum(sessions.values())},
            "streams_in_flight": self.engine.open_streams,
        }
