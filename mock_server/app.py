"""The app factory: wires the spec, fixtures, store and handlers into a Starlette app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from broxi_mock.spec import load_spec
from mock_server.admin import AdminHandlers
from mock_server.config import MockConfig
from mock_server.errors import ApiError, error_response
from mock_server.events import EventBus
from mock_server.fixtures import load_fixtures
from mock_server.handlers import Handlers, example_handler
from mock_server.ratelimit import RateLimiter
from mock_server.routing import build_routes, request_id_of
from mock_server.runs import RunEngine
from mock_server.sessions import SessionLifecycle
from mock_server.store import MemoryStore
from mock_server.webhooks import WebhookDispatcher

logger = logging.getLogger("broxi_mock.server")


def create_app(config: MockConfig | None = None) -> Starlette:
    """Build the mock server for a configuration; raises `MockError` on a bad spec or fixture."""
    config = config or MockConfig()
    spec = load_spec(config.spec_path)
    fixtures = load_fixtures(config.fixtures_dir)
    store = MemoryStore(fixtures, seed=config.seed, max_runs=config.max_runs)
    events = EventBus()
    webhooks = WebhookDispatcher(config.webhooks, config.seed)
    webhooks.attach(events)
    sessions = SessionLifecycle(store, events, config.session_idle_timeout)
    sessions.track(session.id for session in fixtures.sessions if session.status == "active")
    engine = RunEngine(store, config.seed, events)
    limiter = RateLimiter(config.rate_limit)
    handlers = Handlers(store, engine, config, config.public_url.rstrip("/") + spec.base_path)
    routes = build_routes(
        spec, handlers.table(), example_handler(spec), store, limiter, config.max_body_bytes
    )
    admin_spec = load_spec(config.admin_spec_path)
    admin = AdminHandlers(store, limiter, spec, webhooks, sessions)
    routes += build_routes(
        admin_spec, admin.table(), example_handler(admin_spec), store, limiter,
        config.max_body_bytes,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await webhooks.start()
        await sessions.start()
        try:
            yield
        finally:
            await sessions.stop()
            await webhooks.stop()

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.config = config
    app.state.spec = spec
    app.state.store = store
    app.state.engine = engine
    app.state.events = events
    app.state.webhooks = webhooks
    app.state.sessions = sessions
    app.state.limiter = limiter
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    request_id = request_id_of(request)
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        error = ApiError(
            405,
            f"Method {request.method} is not allowed on {request.url.path}; allowed: {allow}.",
            {"field": "method", "reason": "method not allowed", "allowed": allow.split(", ")},
            headers={"Allow": allow},
        )
    elif exc.status_code == 404:
        error = ApiError(
            404,
            f"No operation matches {request.method} {request.url.path}.",
            {"field": "path", "location": "path", "reason": "no such route"},
        )
    else:
        status = exc.status_code if exc.status_code in (400, 413, 415) else 400
        error = ApiError(status, str(exc.detail), None)
    return error_response(request_id, error)


async def _internal_error(request: Request, exc: Exception) -> Response:
    request_id = request_id_of(request)
    logger.exception("Request %s failed with an unexpected error.", request_id)
    error = ApiError(500, "The mock server failed while handling the request.", None)
    return error_response(request_id, error)


def describe(app: Starlette) -> dict[str, Any]:
    """Summarise what an app serves, for the start-up banner."""
    spec = app.state.spec
    return {"spec": str(spec.source), "operations": len(spec.operations())}
