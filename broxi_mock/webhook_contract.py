"""Signing secrets and payload schemas that webhook senders and receivers share.

Both the mock server (the sender) and `broxi-mock webhooks listen` (the receiver) use this
module, so it must not import `mock_server`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import jsonschema_rs

from broxi_mock.spec import Spec

SECRET_PREFIX = "whsec_"
# The Standard Webhooks specification recommends secrets of 24 to 64 random bytes.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
# A fixed development secret, so that `serve` and `webhooks listen` agree without set-up.
# It is public: never use it for an endpoint reachable from other machines.
DEFAULT_SECRET = SECRET_PREFIX + "YnJveGktbW9jay1sb2NhbC13ZWJob29rLXNlY3JldCE="
SECRET_HINT = (
    'make one with: python3 -c "import base64, os; '
    "print('whsec_' + base64.b64encode(os.urandom(32)).decode())\""
)
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def validate_secret(secret: str) -> str:
    """Return a Standard Webhooks secret unchanged, or raise ValueError saying what is wrong."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"secret must be {SECRET_PREFIX!r} followed by base64 ({SECRET_HINT})"
        ) from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"secret must encode {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes "
            f"(got {len(key)}; {SECRET_HINT})"
        )
    return secret


def mask_secret(secret: str) -> str:
    """Shorten a secret for logs and listings so that it is never shown in full."""
    return secret[: len(SECRET_PREFIX) + 4] + "..."


class PayloadChecker:
    """Validates webhook payloads against the request body schemas of the spec's `webhooks`."""

    def __init__(self, spec: Spec) -> None:
        self.validators: dict[str, Any] = {}
        for name, item in (spec.document.get("webhooks") or {}).items():
            body = spec.resolve(spec.resolve(item).get("post", {}).get("requestBody")) or {}
            media = (body.get("content") or {}).get("application/json") or {}
            if "schema" in media:
                schema = spec.schema_of(media["schema"])
                self.validators[name] = jsonschema_rs.validator_for(schema, validate_formats=True)

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(self.validators)

    def check(self, payload: Any) -> list[str]:
        """List the payload's problems as `<JSON pointer>: <reason>`, none when it is valid."""
        if not isinstance(payload, dict):
            return [f"/: expected a JSON object, got {type(payload).__name__}"]
        event = payload.get("event")
        validator = self.validators.get(event) if isinstance(event, str) else None
        if validator is None:
            known = ", ".join(self.event_types)
            return [f"/event: unknown event {event!r} (expected one of {known})"]
        problems = []
        for error in validator.iter_errors(payload):
            pointer = "/" + "/".join(str(part) for part in error.instance_path)
            problems.append(f"{pointer}: {error.message}")
        return problems
