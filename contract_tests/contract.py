"""What the kit's checks read from the spec: error codes, envelope and event schemas, paths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jsonschema_rs

from broxi_mock.spec import Spec

ERROR_CODE_POINTER = "#/components/schemas/ErrorCode"
ERROR_RESPONSE = "#/components/schemas/ErrorResponse"
STREAM_EVENT = "#/components/schemas/StreamEvent"
JSON_MEDIA_TYPE = "application/json"
EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True)
class SchemaProblem:
    """Where a value breaks a schema and why."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


class Contract:
    """The parts of one OpenAPI document that the kit's checks use, compiled once."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.spec = Spec(document)
        operations = self.spec.operations()
        self.paths = {op.operation_id: op.path for op in operations}
        self.parameters = {op.operation_id: op.parameters for op in operations}
        self.responses = {
            op.operation_id: op.definition.get("responses") or {} for op in operations
        }
        self.codes_by_status = _codes_by_status(self.spec)
        self._validators: dict[str, Any] = {}

    def problems(self, ref: str, value: Any) -> list[SchemaProblem]:
        """List where `value` breaks the schema component `ref`, with formats checked."""
        validator = self._validators.get(ref)
        if validator is None:
            schema = self.spec.schema_ref(ref)
            validator = jsonschema_rs.validator_for(schema, validate_formats=True)
            self._validators[ref] = validator
        return [
            SchemaProblem("/" + "/".join(str(part) for part in error.instance_path), error.message)
            for error in validator.iter_errors(value)
        ]

    def has_component(self, ref: str) -> bool:
        """Tell whether the document defines the component `ref`."""
        try:
            self.spec.lookup(ref)
        except Exception:
            return False
        return True

    def required_headers(self, operation_id: str, status: int) -> set[str]:
        """Return the lower-case names of the headers the spec requires on this response."""
        responses = self.responses.get(operation_id, {})
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in responses:
                response = self.spec.resolve(responses[key])
                headers = response.get("headers") or {} if isinstance(response, dict) else {}
                return {
                    name.lower()
                    for name, header in headers.items()
                    if self.spec.resolve(header).get("required")
                }
        return set()

    def parameter_default(self, operation_id: str, name: str) -> Any:
        """Return the schema default of an operation's parameter, or None."""
        for parameter in self.parameters.get(operation_id, ()):
            if parameter.get("name") == name:
                schema = self.spec.resolve(parameter.get("schema") or {})
                return schema.get("default") if isinstance(schema, dict) else None
        return None

    def url(self, base_url: str, operation_id: str, **path_params: str) -> str | None:
        """Build the URL of an operation, or None when the spec has no such operation."""
        path = self.paths.get(operation_id)
        if path is None:
            return None
        for name, value in path_params.items():
            path = path.replace("{" + name + "}", quote(value, safe=""))
        return base_url.rstrip("/") + path


def _codes_by_status(spec: Spec) -> dict[int, set[str]]:
    try:
        declared = spec.lookup(ERROR_CODE_POINTER).get("x-status-codes") or {}
    except Exception:
        return {}
    found: dict[int, set[str]] = {}
    for code, status in declared.items():
        found.setdefault(int(status), set()).add(str(code))
    return found


_CONTRACTS: dict[int, tuple[dict[str, Any], Contract]] = {}


def contract_for(document: dict[str, Any]) -> Contract:
    """Return the compiled contract of a document, building it on first use."""
    cached = _CONTRACTS.get(id(document))
    # Keeping the document next to its contract pins its id, so the id cannot be reused.
    if cached is not None and cached[0] is document:
        return cached[1]
    contract = Contract(document)
    _CONTRACTS[id(document)] = (document, contract)
    return contract


def media_type_of(content_type: str | None) -> str:
    """Return the lower-case essence of a Content-Type value, or '' when there is none."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_json_media_type(media_type: str) -> bool:
    """Tell whether a media type essence is JSON (`application/json` or a `+json` type)."""
    return media_type == JSON_MEDIA_TYPE or media_type.endswith("+json")


def load_json(content: bytes | None) -> tuple[Any, str | None]:
    """Decode a JSON body; return (value, None) or (None, why it is not JSON)."""
    if not content:
        return None, "empty body"
    try:
        return json.loads(content), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"not JSON ({exc})"


def excerpt(content: bytes | str | None, limit: int = 200) -> str:
    """Show the start of a body for a failure message."""
    if content is None:
        return "no body"
    text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
    text = text if len(text) <= limit else text[:limit] + "..."
    return repr(text)


def join_items(items: list[str], limit: int = 5) -> str:
    """Join the first `limit` items with semicolons and add how many more there are."""
    more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more
