"""The `Prefer` request header: pick a documented status, a named example or a generated body.

The preferences follow Stoplight Prism: `code=503`, `example=NAME` and `dynamic=true`, in one
header separated by commas (RFC 7240 syntax). Preferences with other names, such as
`return=minimal`, are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broxi_mock.spec import Operation, Spec
from mock_server.errors import ApiError
from mock_server.validation import JSON_MEDIA_TYPE, shorten

KNOWN_PREFERENCES = ("code", "example", "dynamic")


@dataclass(frozen=True)
class Preference:
    """The preferences of one request that broxi-mock acts on."""

    raw: str
    code: int | None = None
    example: str | None = None
    dynamic: bool = False


@dataclass(frozen=True)
class DocumentedResponse:
    """One response of an operation as the spec documents it."""

    status: int
    description: str
    examples: dict[str, Any]
    schema: Any


@dataclass(frozen=True)
class Choice:
    """The documented response a `Prefer` header asked for."""

    response: DocumentedResponse
    example: str | None
    dynamic: bool

    @property
    def status(self) -> int:
        return self.response.status


def parse_prefer(header: str, codes: list[int] | None = None) -> Preference | None:
    """Read the preferences broxi-mock supports; None when the header names none of them.

    `codes` lists the operation's documented statuses, for the error of an invalid `code`.
    """
    header = header_text(header)
    found: dict[str, str] = {}
    for item in header.split(","):
        # A preference may carry parameters after ';', which none of ours use.
        name, _, value = item.split(";", 1)[0].partition("=")
        name = name.strip().lower()
        if name in KNOWN_PREFERENCES:
            found[name] = value.strip().strip('"')
    if not found:
        return None
    dynamic = found.get("dynamic", "false").lower()
    if dynamic not in ("true", "false"):
        raise prefer_error(
            f"Prefer dynamic={shorten(found['dynamic'], 40)!r} must be true or false.",
            f"invalid dynamic value {shorten(found['dynamic'], 40)!r}",
            ["true", "false"],
        )
    example = found.get("example") or None
    if example is not None and dynamic == "true":
        raise prefer_error(
            "Prefer example and dynamic=true cannot be combined; send one.",
            "example and dynamic=true conflict",
            ["example=NAME", "dynamic=true"],
        )
    code = _parse_code(found.get("code"), codes)
    return Preference(header, code, example, dynamic == "true")


def header_text(value: str) -> str:
    """Undo the Latin-1 decoding of a header sent as UTF-8, so that messages quote its text."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _parse_code(raw: str | None, codes: list[int] | None) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) == 3):
        shown = shorten(raw, 40)
        raise prefer_error(
            f"Prefer code={shown!r} is not an HTTP status code.",
            f"invalid status code {shown!r}",
            codes,
        )
    return int(raw)


def prefer_error(message: str, reason: str, allowed: list[Any] | None) -> ApiError:
    """Build the 400 for an unusable `Prefer` header; `allowed` lists the valid values."""
    details: dict[str, Any] = {"field": "Prefer", "location": "header", "reason": reason}
    if allowed is not None:
        details["allowed"] = allowed
    return ApiError(400, message, details)


class ResponseCatalog:
    """The documented responses of one operation, read once at start-up."""

    def __init__(self, spec: Spec, operation: Operation) -> None:
        self.operation_id = operation.operation_id
        self.responses: dict[int, DocumentedResponse] = {}
        for status, node in (operation.definition.get("responses") or {}).items():
            if str(status).isdigit():
                self.responses[int(status)] = _documented(spec, int(status), node)
        success = [status for status in self.responses if 200 <= status < 300]
        self.success_status = min(success) if success else None

    def choose(self, preference: Preference) -> Choice:
        """Return the response a preference names, or raise a 400 that lists the valid ones."""
        status = preference.code if preference.code is not None else self.success_status
        if status is None or status not in self.responses:
            allowed = sorted(self.responses)
            raise prefer_error(
                f"Prefer code={status} is not documented for {self.operation_id}; "
                f"use one of {', '.join(map(str, allowed))}.",
                f"undocumented status {status}",
                allowed,
            )
        response = self.responses[status]
        if preference.example is not None and preference.example not in response.examples:
            names = list(response.examples)
            listed = ", ".join(repr(name) for name in names) or "none"
            shown = shorten(preference.example, 60)
            raise prefer_error(
                f"Prefer example={shown!r} is not a named example of the {status} "
                f"response of {self.operation_id}; its examples: {listed}.",
                f"unknown example {shown!r}",
                names,
            )
        return Choice(response, preference.example, preference.dynamic)


def _documented(spec: Spec, status: int, node: Any) -> DocumentedResponse:
    response = spec.resolve(node)
    media = (response.get("content") or {}).get(JSON_MEDIA_TYPE)
    examples: dict[str, Any] = {}
    schema = None
    if media is not None:
        schema = media.get("schema")
        for name, example in (media.get("examples") or {}).items():
            examples[name] = spec.resolve(example).get("value")
    return DocumentedResponse(status, str(response.get("description", "")), examples, schema)
