"""Turn the spec's operations into Starlette routes that authenticate, validate and dispatch."""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from broxi_mock.errors import SpecError
from broxi_mock.spec import Operation, Spec
from mock_server.auth import authenticate
from mock_server.errors import ApiError, client_gone, error_response, field_error
from mock_server.fixtures import TokenFixture
from mock_server.negotiation import choose_media_type, parse_media_type
from mock_server.ratelimit import RateLimiter, rate_limited_error
from mock_server.scenarios import OperationScenarios, ScenarioError
from mock_server.store import Store
from mock_server.validation import (
    JSON_MEDIA_TYPE,
    RequestRules,
    check_body,
    check_content_encoding,
    check_parameters,
    compile_rules,
    invalid_request,
    parse_json_body,
    shorten,
)

logger = logging.getLogger("broxi_mock.server")
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Request ids only need to be unique, not secret: a generator seeded once from the system's
# entropy saves a system call on every request.
_REQUEST_IDS = random.Random(os.urandom(16))
_NO_VALUES: dict[str, str] = {}


@dataclass
class RequestContext:
    """A request that passed authentication and validation, handed to its handler."""

    request: Request
    request_id: str
    token_or_none: TokenFixture | None
    operation: Operation
    params: dict[str, Any]
    body: dict[str, Any] | None
    media_type: str
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> TokenFixture:
        """Return the request's token; only operations that need authentication may ask."""
        if self.token_or_none is None:
            raise RuntimeError(f"{self.operation.operation_id} does not authenticate requests")
        return self.token_or_none


Handler = Callable[[RequestContext], Awaitable[Response]]


def request_id_of(request: Request) -> str:
    """Return the request's id: the client's `X-Request-ID` when well formed, else a new one."""
    return assign_request_id(request.scope)


def _new_request_id() -> str:
    return f"req_{_REQUEST_IDS.getrandbits(64):016x}"


def assign_request_id(scope: Scope) -> str:
    """Give a request its id once, keeping it in the scope for every later reader."""
    known = scope.get("broxi.request_id")
    if known is not None:
        return str(known)
    sent = None
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id":
            sent = value.decode("latin-1")
            break
    request_id = sent if sent and REQUEST_ID_PATTERN.fullmatch(sent) else _new_request_id()
    scope["broxi.request_id"] = request_id
    return request_id


@dataclass
class OperationEndpoint:
    """The ASGI endpoint of one operation: checks a request, then calls the handler."""

    operation: Operation
    rules: RequestRules
    response_media_types: tuple[str, ...]
    handler: Handler
    store: Store
    limiter: RateLimiter
    max_body_bytes: int
    authenticated: bool = True
    scenarios: OperationScenarios | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response, headers = await self.respond(request)
        await send_response(response, headers, scope, receive, send)

    async def respond(self, request: Request) -> tuple[Response, dict[str, str]]:
        """Handle a request and return its response and the headers to add to it."""
        request_id = request_id_of(request)
        request.scope["broxi.operation_id"] = self.operation.operation_id
        headers: dict[str, str] = {"X-Request-ID": request_id}
        try:
            response = await self._respond(request, request_id, headers)
        except ApiError as error:
            # The request journal reports the error's details as the problems found.
            request.scope["broxi.error"] = error
            if error.status >= 500 and not isinstance(error, ScenarioError):
                logger.error(
                    "%s %s returned %d: %s",
                    request.method,
                    request.url.path,
                    error.status,
                    error.message,
                )
            response = error_response(request_id, error)
        return response, headers

    async def _respond(
        self, request: Request, request_id: str, headers: dict[str, str]
    ) -> Response:
        token = None
        state = None
        if self.authenticated:
            token = authenticate(self.store, request.headers.get("authorization"))
            state = self.limiter.hit(token)
            if state is not None:
                headers.update(state.headers())
                if not state.allowed:
                    raise rate_limited_error(state)
        choice = None
        if self.scenarios is not None:
            choice = await self.scenarios.prepare(request, state)
        context = await self._check(request, request_id, token)
        if choice is not None and self.scenarios is not None:
            preferred = self.scenarios.respond(choice, context.media_type, context.body)
            if preferred is not None:
                return preferred
        response = await self.handler(context)
        headers.update(context.extra_headers)
        return response

    async def _check(
        self, request: Request, request_id: str, token: TokenFixture | None
    ) -> RequestContext:
        media_type = choose_media_type(request.headers.get("accept"), self.response_media_types)
        if media_type is None:
            raise field_error(
                406,
                f"Cannot answer with any media type of Accept "
                f"{shorten(request.headers.get('accept') or '', 80)!r}; "
                f"this operation returns {', '.join(self.response_media_types)}.",
                "Accept",
                "header",
                "no acceptable media type",
                allowed=list(self.response_media_types),
            )
        body = await self._read_body(request) if self.rules.body_media_types else None
        # Only the locations the operation has parameters in: parsing the query string or the
        # cookies of a request that has none to check costs microseconds for nothing.
        sources = {location: _source(request, location) for location in self.rules.locations}
        params, problems = check_parameters(self.rules, sources)
        if body is not None:
            problems.extend(check_body(self.rules, body))
        if problems:
            raise invalid_request(problems)
        return RequestContext(request, request_id, token, self.operation, params, body, media_type)

    async def _read_body(self, request: Request) -> dict[str, Any] | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        chunks = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise _too_large(self.max_body_bytes)
                chunks.append(chunk)
        except ClientDisconnect as exc:
            raise client_gone("The client closed the connection while sending the body.") from exc
        raw = b"".join(chunks)
        if not raw and not self.rules.body_required:
            return None
        content_type = request.headers.get("content-type")
        if raw and content_type is None:
            raise field_error(
                415,
                "Missing Content-Type header; send 'application/json'.",
                "Content-Type",
                "header",
                "missing",
            )
        if content_type is not None:
            _check_content_type(content_type)
        check_content_encoding(request.headers.get("content-encoding"))
        return parse_json_body(raw)  # type: ignore[no-any-return]


async def send_response(
    response: Response, headers: dict[str, str], scope: Scope, receive: Receive, send: Send
) -> None:
    """Send a response with `headers` set on it, replacing any of the same name."""
    if type(response).__call__ is not Response.__call__ or response.background is not None:
        response.headers.update(headers)
        await response(scope, receive, send)
        return
    # A response with its whole body (Response's own `__call__`) is sent here with its header
    # list built once, instead of through `MutableHeaders`.
    added = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]
    names = {name for name, _ in added}
    raw = [header for header in response.raw_headers if header[0] not in names]
    raw += added
    await send({"type": "http.response.start", "status": response.status_code, "headers": raw})
    await send({"type": "http.response.body", "body": response.body})


def _source(request: Request, location: str) -> Any:
    if location == "path":
        return request.path_params
    if location == "query":
        # Parsing an empty query string still builds a `QueryParams`; most requests have none.
        return request.query_params if request.scope["query_string"] else _NO_VALUES
    if location == "header":
        return request.headers
    return request.cookies


def _check_content_type(content_type: str) -> None:
    essence, params = parse_media_type(content_type)
    charset = params.get("charset", "utf-8").lower()
    if essence != JSON_MEDIA_TYPE or charset not in ("utf-8", "utf8"):
        raise field_error(
            415,
            f"Content-Type {shorten(content_type, 80)!r} is not supported; "
            "send 'application/json'.",
            "Content-Type",
            "header",
            "unsupported media type",
            allowed=[JSON_MEDIA_TYPE],
        )


def _too_large(limit: int) -> ApiError:
    return field_error(
        413,
        f"Request body is larger than {limit} bytes.",
        "/",
        "body",
        f"body exceeds {limit} bytes",
        max_bytes=limit,
    )


def response_media_types(spec: Spec, operation: Operation) -> tuple[str, ...]:
    """List the media types of an operation's success responses, JSON first."""
    found: list[str] = []
    for status, response in (operation.definition.get("responses") or {}).items():
        if not str(status).startswith("2"):
            continue
        for media_type in spec.resolve(response).get("content") or {}:
            if media_type not in found:
                found.append(media_type)
    return tuple(found) or (JSON_MEDIA_TYPE,)


def build_routes(
    spec: Spec,
    handlers: dict[str, Handler],
    fallback: Callable[[Operation], Handler],
    store: Store,
    limiter: RateLimiter,
    max_body_bytes: int,
    scenarios: Callable[[Operation], OperationScenarios] | None = None,
) -> list[Route]:
    """Make one route per path of the spec, each method dispatched to its handler.

    `scenarios` makes the `Prefer` and chaos handling of an operation; without it, routes
    ignore `Prefer` and have no chaos.
    """
    routes = []
    for operation in spec.operations():
        handler = handlers.get(operation.operation_id)
        if handler is None:
            logger.warning(
                "No handler for %s; it answers with its spec example.", operation.operation_id
            )
            handler = fallback(operation)
        try:
            endpoint = OperationEndpoint(
                operation=operation,
                rules=compile_rules(spec, operation),
                response_media_types=response_media_types(spec, operation),
                handler=handler,
                store=store,
                limiter=limiter,
                max_body_bytes=max_body_bytes,
                authenticated=_needs_token(spec, operation),
                scenarios=scenarios(operation) if scenarios is not None else None,
            )
        except (ValueError, LookupError, TypeError, AttributeError, RecursionError) as exc:
            # The structural check catches most problems first; this keeps the rest to one line.
            # jsonschema_rs.ValidationError, raised for a schema it cannot compile, is a ValueError.
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SpecError(
                f"{spec.source}: {operation.pointer}: cannot compile the operation ({problem})"
            ) from exc
        path = spec.base_path + operation.path
        routes.append(
            Route(path, endpoint, methods=[operation.method], name=operation.operation_id)
        )
    merged = _merge_methods(routes)
    return _method_guards(merged) + merged


def _needs_token(spec: Spec, operation: Operation) -> bool:
    requirements = operation.definition.get("security", spec.document.get("security")) or []
    return bool(requirements) and all(requirement for requirement in requirements)


def _method_guards(routes: list[Route]) -> list[Route]:
    """Return 405 on a fixed path for the methods of a templated path that also matches it.

    Without a guard, `DELETE /_mock/webhooks/deliveries` would reach
    `DELETE /_mock/webhooks/{endpoint_id}` and fail as a malformed id.
    """
    guards = []
    for route in routes:
        if route.param_convertors:
            continue
        own = set(route.methods or ())
        shadowing = set()
        for other in routes:
            if other is not route and other.path_regex.match(route.path):
                shadowing |= set(other.methods or ()) - own
        if shadowing:
            allow = ", ".join(sorted(own))
            guards.append(Route(route.path, _not_allowed(allow), methods=sorted(shadowing)))
    return guards


def _not_allowed(allow: str) -> Callable[[Request], Awaitable[Response]]:
    async def reject(request: Request) -> Response:
        raise HTTPException(405, headers={"Allow": allow})

    return reject


def _merge_methods(routes: list[Route]) -> list[Route]:
    # Starlette returns 405 only when no route of the path accepts the method, so routes of one
    # path must come together; one dispatching route per path keeps `Allow` complete.
    by_path: dict[str, list[Route]] = {}
    for route in routes:
        by_path.setdefault(route.path, []).append(route)
    merged = []
    for path, group in by_path.items():
        if len(group) == 1:
            merged.append(group[0])
            continue
        table = {method: route.endpoint for route in group for method in route.methods or ()}
        merged.append(Route(path, MethodDispatch(table), methods=sorted(table)))
    return merged


class MethodDispatch:
    """The ASGI app of a path with several operations: calls the one of the request's method."""

    def __init__(self, table: dict[str, ASGIApp]) -> None:
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.table[scope["method"]](scope, receive, send)
