"""Handlers of the admin operations under /_mock/ (see openapi/admin.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from broxi_mock.spec import Spec
from broxi_mock.webhook_contract import validate_secret
from mock_server.errors import field_error
from mock_server.handlers import json_response
from mock_server.journal import RequestJournal
from mock_server.ratelimit import RateLimiter
from mock_server.routing import Handler, RequestContext
from mock_server.runs import RunEngine
from mock_server.sessions import SessionLifecycle
from mock_server.store import Store
from mock_server.webhook_settings import validate_webhook_url
from mock_server.webhooks import WebhookDispatcher


@dataclass
class AdminHandlers:
    """Inspect and reset the mock's state; these operations need no token."""

    store: Store
    limiter: RateLimiter
    public_spec: Spec
    journal: RequestJournal
    engine: RunEngine
    webhooks: WebhookDispatcher
    sessions: SessionLifecycle

    def table(self) -> dict[str, Handler]:
        return {
            "getPublicSpec": self.get_public_spec,
            "listRequests": self.list_requests,
            "clearRequests": self.clear_requests,
            "resetState": self.reset_state,
            "getState": self.get_state,
            "listWebhookEndpoints": self.list_webhook_endpoints,
            "addWebhookEndpoint": self.add_webhook_endpoint,
            "removeWebhookEndpoint": self.remove_webhook_endpoint,
            "listWebhookDeliveries": self.list_webhook_deliveries,
            "redeliverWebhook": self.redeliver_webhook,
            "endSession": self.end_session,
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
        self.sessions.reset()
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

    async def list_webhook_endpoints(self, context: RequestContext) -> Response:
        endpoints = [endpoint.to_json() for endpoint in self.webhooks.endpoints.values()]
        return json_response({"endpoints": endpoints})

    async def add_webhook_endpoint(self, context: RequestContext) -> Response:
        body = context.body or {}
        url, secret = body["url"], body.get("secret")
        try:
            validate_webhook_url(url)
        except ValueError as exc:
            raise field_error(
                400, f"Webhook URL is invalid: {exc}.", "/url", "body", "invalid webhook URL"
            ) from exc
        if secret is not None:
            try:
                validate_secret(secret)
            except ValueError as exc:
                # The message never repeats the secret itself.
                raise field_error(
                    400, f"Webhook secret is invalid: {exc}.", "/secret", "body", "invalid secret"
                ) from exc
        endpoint = self.webhooks.add_endpoint(url, body.get("events"), secret)
        return json_response(endpoint.to_json(), 201)

    async def remove_webhook_endpoint(self, context: RequestContext) -> Response:
        endpoint_id = context.params["endpoint_id"]
        if not self.webhooks.remove_endpoint(endpoint_id):
            raise field_error(
                404,
                f"Webhook endpoint {endpoint_id!r} not found.",
                "endpoint_id",
                "path",
                "not found",
            )
        return Response(status_code=204)

    async def list_webhook_deliveries(self, context: RequestContext) -> Response:
        params = context.params
        found = self.webhooks.log.search(
            status=params["status"], event_id=params["event_id"], endpoint_id=params["endpoint_id"]
        )
        limit = params["limit"]
        deliveries = [record.to_json() for record in found[:limit]]
        return json_response({"deliveries": deliveries, "total": len(found), "limit": limit})

    async def redeliver_webhook(self, context: RequestContext) -> Response:
        delivery_id = context.params["delivery_id"]
        original = self.webhooks.log.get(delivery_id)
        if original is None:
            raise field_error(
                404,
                f"Webhook delivery {delivery_id!r} not found.",
                "delivery_id",
                "path",
                "not found",
            )
        if original.endpoint_id not in self.webhooks.endpoints:
            raise field_error(
                404,
                f"The endpoint of delivery {delivery_id!r} was removed.",
                "delivery_id",
                "path",
                "endpoint removed",
            )
        if original.status == "pending":
            raise field_error(
                409,
                f"Webhook delivery {delivery_id!r} is still pending.",
                "delivery_id",
                "path",
                "delivery is still pending",
            )
        record = self.webhooks.redeliver(original)
        return json_response(record.to_json(), 202)

    async def end_session(self, context: RequestContext) -> Response:
        session = self.sessions.end(context.params["session_id"], "ended_by_client")
        return json_response(session.to_json())
