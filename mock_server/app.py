"""The app factory: wires the spec, fixtures, store and handlers into a Starlette app."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from broxi_mock.spec import Operation, Spec, bundled_admin_spec_path, bundled_spec_path
from broxi_mock.speccheck import check_handled_parameters, load_checked_spec
from mock_server.access import AccessMiddleware
from mock_server.admin import AdminHandlers
from mock_server.auth import find_token
from mock_server.chaos import compile_chaos
from mock_server.config import MockConfig
from mock_server.cors import CorsMiddleware
from mock_server.errors import ApiError, error_response
from mock_server.events import EventBus
from mock_server.fixtures import Fixtures, load_fixtures
from mock_server.generation import BodyGenerator
from mock_server.handlers import Handlers, example_handler
from mock_server.journal import RequestJournal
from mock_server.ratelimit import RateLimiter
from mock_server.routing import build_routes, request_id_of
from mock_server.runs import RunEngine
from mock_server.scenarios import OperationScenarios, build_scenarios
from mock_server.sessions import SessionLifecycle
from mock_server.store import MemoryStore, Store
from mock_server.streaming import SHUTDOWN_MESSAGE
from mock_server.webhooks import WebhookDispatcher

logger = logging.getLogger("broxi_mock.server")


def create_app(config: MockConfig | None = None) -> Starlette:
    """Build the mock server for a configuration; raises `MockError` on a bad spec or fixture."""
    config = config or MockConfig()
    spec = load_checked_spec(config.spec_path)
    admin_spec = load_checked_spec(config.admin_spec_path)
    fixtures = load_fixtures(config.fixtures_dir)
    store = _open_store(config, fixtures)
    events = EventBus()
    webhooks = WebhookDispatcher(config.webhooks, config.seed)
    webhooks.attach(events)
    sessions = SessionLifecycle(store, events, config.session_idle_timeout)
    engine = RunEngine(store, config.seed, events)
    limiter = RateLimiter(config.rate_limit, config.clock)
    journal = RequestJournal(config.journal_size)
    handlers = Handlers(store, engine, config, config.public_url.rstrip("/") + spec.base_path)
    check_handled_parameters(spec, bundled_spec_path(), handlers.table())
    routes = build_routes(
        spec,
        handlers.table(),
        example_handler(spec),
        store,
        limiter,
        config.max_body_bytes,
        _scenario_factory(spec, config),
    )
    admin = AdminHandlers(store, limiter, spec, journal, engine, webhooks, sessions)
    check_handled_parameters(admin_spec, bundled_admin_spec_path(), admin.table())
    routes += build_routes(
        admin_spec,
        admin.table(),
        example_handler(admin_spec),
        store,
        limiter,
        config.max_body_bytes,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await webhooks.start()
        await sessions.start()
        try:
            yield
        finally:
            engine.stop_all(SHUTDOWN_MESSAGE)
            await sessions.stop()
            await webhooks.stop()
            store.close()

    app = Starlette(
        routes=routes,
        middleware=_middleware(config, journal, spec.operations() + admin_spec.operations()),
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
    app.state.journal = journal
    return app


def _middleware(
    config: MockConfig, journal: RequestJournal, operations: list[Operation]
) -> list[Middleware]:
    # Two pure ASGI layers and no BaseHTTPMiddleware. The access layer sits outside CORS, so
    # rejected preflights are logged and journaled too.
    methods = {operation.method for operation in operations}
    return [
        Middleware(AccessMiddleware, journal=journal),
        Middleware(CorsMiddleware, origins=config.cors_origins, methods=methods),
    ]


def _scenario_factory(spec: Spec, config: MockConfig) -> Callable[[Operation], OperationScenarios]:
    chaos = compile_chaos(spec, config.chaos, config.seed)
    generator = BodyGenerator(spec, config.seed)

    def build(operation: Operation) -> OperationScenarios:
        return build_scenarios(spec, operation, chaos, generator)

    return build


def _open_store(config: MockConfig, fixtures: Fixtures) -> Store:
    if config.state_path is None:
        return MemoryStore(fixtures, seed=config.seed, max_runs=config.max_runs)
    # Imported only for a state file: sqlite3 adds about 1 MB to every server's memory.
    from mock_server.sqlstore import SqliteStore

    return SqliteStore(config.state_path, fixtures, seed=config.seed, max_runs=config.max_runs)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    request_id = request_id_of(request)
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        error = ApiError(
            405,
            f"Method {request.method} is not allowed on {request.url.path}; allowed: {allow}.",
            {
                "field": "method",
                "location": "method",
                "reason": "method not allowed",
                "allowed": allow.split(", "),
            },
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
    request.scope["broxi.error"] = error
    response = error_response(request_id, error)
    # Responses to a known token carry its rate-limit headers, but an unrouted request is not
    # counted.
    token = find_token(request.app.state.store, request.headers.get("authorization"))
    state = request.app.state.limiter.peek(token) if token is not None else None
    if state is not None:
        response.headers.update(state.headers())
    return response


async def _internal_error(request: Request, exc: Exception) -> Response:
    request_id = request_id_of(request)
    logger.exception("Request %s failed with an unexpected error.", request_id)
    error = ApiError(500, "The mock server failed while handling the request.", None)
    return error_response(request_id, error)


def describe(app: Starlette) -> dict[str, Any]:
    """Summarise what an app serves, for the start-up banner."""
    spec = app.state.spec
    return {"spec": str(spec.source), "operations": len(spec.operations())}
