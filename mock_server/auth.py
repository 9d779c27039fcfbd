"""Bearer token authentication."""

from __future__ import annotations

from mock_server.errors import ApiError
from mock_server.fixtures import TokenFixture
from mock_server.store import Store

CHALLENGE = 'Bearer realm="broxi"'


def mask_token(token: str) -> str:
    """Shorten a token for logs and messages so that it is never shown in full."""
    return token[:6] + "..." if len(token) > 10 else "***"


def authenticate(store: Store, header: str | None) -> TokenFixture:
    """Return the token of an `Authorization: Bearer` header, or raise a 401."""
    if header is None:
        raise _unauthorized(
            "Missing Authorization header; send 'Authorization: Bearer <token>'.",
            "missing",
            CHALLENGE,
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        # A bare token arrives where the scheme should be; never echo it in full.
        shown = mask_token(scheme)
        raise _unauthorized(
            f"Authorization scheme {shown!r} is not supported; send 'Bearer <token>'.",
            "unsupported scheme",
            CHALLENGE + ', error="invalid_request"',
        )
    token = token.strip()
    if not token:
        raise _unauthorized(
            "Bearer token is empty.", "empty token", CHALLENGE + ', error="invalid_request"'
        )
    found = store.get_token(token)
    if found is None:
        raise _unauthorized(
            f"API token {mask_token(token)!r} is not valid.",
            "unknown token",
            CHALLENGE + ', error="invalid_token"',
        )
    return found


def find_token(store: Store, header: str | None) -> TokenFixture | None:
    """Return the token of an `Authorization: Bearer` header, or None, without raising."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return store.get_token(token.strip())


def _unauthorized(message: str, reason: str, challenge: str) -> ApiError:
    details = {"field": "Authorization", "location": "header", "reason": reason}
    return ApiError(401, message, details, headers={"WWW-Authenticate": challenge})
