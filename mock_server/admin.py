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
from mock_server.store import Store


@dataclass
class AdminHandlers:
    """Inspect and reset the mock's state; these operations need no token."""

    store: Store
    limiter: RateLimiter
    public_spec: Spec
    journal: RequestJournal

    def table(self) -> dict[str, Handler]:
        return {
            "getPublicSpec": self.get_public_spec,
            "listRequests": self.list_requests,
            "clearRequests": self.clear_requests,
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
