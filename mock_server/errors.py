"""API errors and the one error envelope every error status shares."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from mock_server.encoding import encode_json

STATUS_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    # No client receives this status because it left before the response; the journal records it.
    499: "CLIENT_CLOSED_REQUEST",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


class ApiError(Exception):
    """An error returned in the envelope; `details` name the field and the reason."""

    def __init__(
        self,
        status: int,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = STATUS_CODES[status]
        self.message = message
        self.details = details
        self.headers = headers or {}


def field_error(
    status: int, message: str, field: str, location: str, reason: str, **extra: Any
) -> ApiError:
    """Build an error whose details name one field."""
    details = {"field": field, "location": location, "reason": reason, **extra}
    return ApiError(status, message, details)


def client_gone(message: str) -> ApiError:
    """Build the 499 of a request whose client left; only the journal records it."""
    return ApiError(499, message, {"field": "/", "location": "body", "reason": "client left"})


def error_body(request_id: str, code: str, message: str, details: dict[str, Any] | None) -> bytes:
    """Encode the error envelope."""
    envelope = {
        "error": {"code": code, "message": message, "details": details},
        "request_id": request_id,
    }
    return encode_json(envelope)


def error_response(request_id: str, error: ApiError) -> Response:
    """Build the envelope response of an `ApiError`, with the request id header."""
    body = error_body(request_id, error.code, error.message, error.details)
    headers = {"X-Request-ID": request_id, **error.headers}
    return Response(body, error.status, headers=headers, media_type="application/json")
