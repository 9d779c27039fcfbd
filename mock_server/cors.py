"""CORS for browser clients: allowed origins, preflights without a token, enveloped rejections."""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from broxi_mock.errors import ConfigError
from mock_server.errors import ApiError, error_response
from mock_server.routing import assign_request_id
from mock_server.validation import shorten

DEFAULT_ORIGINS = (
    "http://localhost",
    "http://localhost:*",
    "http://127.0.0.1",
    "http://127.0.0.1:*",
    "https://localhost",
    "https://localhost:*",
    "https://127.0.0.1",
    "https://127.0.0.1:*",
)
EXPOSED_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "X-Request-ID",
)
# A wildcard never matches ':', '/' or '@', so it cannot stretch one host into another.
WILDCARD = "[A-Za-z0-9.-]*"
# Matched with fullmatch: `$` would also match before a trailing newline.
ORIGIN_PATTERN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+")
PREFLIGHT_MAX_AGE = 600


def origin_regex(patterns: Iterable[str]) -> str:
    """Compile origin patterns into one regular expression; raise `ConfigError` on a bad one.

    A pattern is an exact origin such as `https://app.example.com`, or one with `*` standing
    for any run of letters, digits, dots and hyphens, such as `http://localhost:*` (any port)
    or `https://*.example.com`. `*` alone allows every origin.
    """
    parts = []
    for pattern in patterns:
        if pattern == "*":
            return ".*"
        if not ORIGIN_PATTERN.fullmatch(pattern.replace("*", "x")):
            raise ConfigError(
                f"cors origin {pattern!r} is invalid (expected scheme://host[:port] with no path, "
                "such as 'http://localhost:3000', with '*' as a wildcard)"
            )
        parts.append(WILDCARD.join(re.escape(piece) for piece in pattern.split("*")))
    return "|".join(f"(?:{part})" for part in parts) or "(?!)"


class CorsMiddleware(CORSMiddleware):
    """Starlette's CORS handling, with the error envelope in every rejected preflight response.

    Starlette returns plain text for a rejected preflight, but clients here expect the same
    envelope as for every other error. Allowed headers mirror the ones the browser requests.
    """

    def __init__(self, app: ASGIApp, origins: tuple[str, ...], methods: Iterable[str]) -> None:
        self.origin_patterns = origins
        super().__init__(
            app,
            allow_origin_regex=origin_regex(origins),
            allow_methods=sorted({*methods, "HEAD", "OPTIONS"}),
            allow_headers=["*"],
            allow_private_network=True,
            expose_headers=EXPOSED_HEADERS,
            max_age=PREFLIGHT_MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Requests without an Origin header (curl, SDKs, server code) skip CORS work entirely,
        # so their responses carry no `Vary: Origin`.
        if scope["type"] != "http" or not _has_origin(scope):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if (
            scope["method"] == "OPTIONS"
            and "origin" in headers
            and "access-control-request-method" in headers
        ):
            response = self._preflight(scope, headers)
            await response(scope, receive, send)
            return
        await self.simple_response(scope, receive, send, request_headers=headers)

    def _preflight(self, scope: Scope, headers: Headers) -> Response:
        request_id = assign_request_id(scope)
        response = self.preflight_response(request_headers=headers)
        if response.status_code == 200:
            kept = {
                name: value
                for name, value in response.headers.items()
                if name not in ("content-length", "content-type")
            }
            return Response(status_code=204, headers={**kept, "X-Request-ID": request_id})
        error = self._rejection(headers)
        scope["broxi.error"] = error
        rejected = error_response(request_id, error)
        rejected.headers["Vary"] = response.headers["Vary"]
        return rejected

    def _rejection(self, headers: Headers) -> ApiError:
        origin = headers["origin"]
        if not self.is_allowed_origin(origin=origin):
            return ApiError(
                403,
                f"CORS preflight from origin {shorten(origin, 80)!r} is not allowed; "
                "allowed origins: "
                f"{', '.join(self.origin_patterns) or 'none'}.",
                {
                    "field": "Origin",
                    "location": "header",
                    "reason": "origin not allowed",
                    "allowed": list(self.origin_patterns),
                },
            )
        method = headers["access-control-request-method"]
        return ApiError(
            405,
            f"CORS preflight asks for method {shorten(method, 40)!r}, which no route serves; "
            f"allowed: {', '.join(self.allow_methods)}.",
            {
                "field": "Access-Control-Request-Method",
                "location": "header",
                "reason": "method not allowed",
                "allowed": list(self.allow_methods),
            },
        )


def _has_origin(scope: Scope) -> bool:
    return any(name == b"origin" for name, _ in scope["headers"])
