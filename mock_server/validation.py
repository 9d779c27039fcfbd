"""Compile an operation's request rules once at start-up and check requests against them."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jsonschema_rs

from broxi_mock.spec import Operation, Spec
from mock_server.errors import ApiError

JSON_MEDIA_TYPE = "application/json"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where, which field, and why."""

    location: str
    field: str
    reason: str
    # More details for the client, such as `allowed` values.
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "location": self.location, "reason": self.reason, **self.extra}


@dataclass(frozen=True)
class ParameterRule:
    name: str
    location: str
    required: bool
    types: frozenset[str]
    default: Any
    validator: Any = field(repr=False)
    # Descriptions of valid values, in words, for schemas whose own message is vague.
    expected: str | None = None
    bounds: tuple[Any, Any] = (None, None)


@dataclass(frozen=True)
class RequestRules:
    """The rules a valid request of one operation follows."""

    parameters: tuple[ParameterRule, ...]
    body_required: bool
    body_media_types: frozenset[str]
    body_validator: Any = field(repr=False)

    @cached_property
    def locations(self) -> frozenset[str]:
        """Return where the operation's parameters are: path, query, header or cookie."""
        return frozenset(rule.location for rule in self.parameters)


def compile_rules(spec: Spec, operation: Operation) -> RequestRules:
    """Compile the parameter and body validators of an operation."""
    parameters = tuple(_compile_parameter(spec, p) for p in operation.parameters)
    body = spec.resolve(operation.definition.get("requestBody")) or {}
    content = body.get("content") or {}
    validator = None
    if JSON_MEDIA_TYPE in content and "schema" in content[JSON_MEDIA_TYPE]:
        schema = spec.schema_of(content[JSON_MEDIA_TYPE]["schema"])
        validator = jsonschema_rs.validator_for(schema, validate_formats=True)
    return RequestRules(
        parameters=parameters,
        body_required=bool(body.get("required")),
        body_media_types=frozenset(content),
        body_validator=validator,
    )


def _compile_parameter(spec: Spec, parameter: dict[str, Any]) -> ParameterRule:
    schema = parameter.get("schema") or {}
    resolved = spec.resolve(schema)
    kind = resolved.get("type", "string")
    types = frozenset([kind] if isinstance(kind, str) else kind)
    return ParameterRule(
        name=parameter["name"],
        location=parameter["in"],
        required=bool(parameter.get("required")) or parameter["in"] == "path",
        types=types,
        default=resolved.get("default"),
        validator=jsonschema_rs.validator_for(spec.schema_of(schema), validate_formats=True),
        expected=_formats_in_words(resolved),
        bounds=(resolved.get("minimum"), resolved.get("maximum")),
    )


FORMAT_WORDS = {
    "date-time": "an RFC 3339 date-time with an offset (such as 2024-01-31T23:59:59Z)",
    "date": "a date YYYY-MM-DD",
}


def _formats_in_words(schema: dict[str, Any]) -> str | None:
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    formats = [str(option.get("format")) for option in options if isinstance(option, dict)]
    if not formats or not all(name in FORMAT_WORDS for name in formats):
        return None
    return " or ".join(FORMAT_WORDS[name] for name in formats)


def coerce(raw: str, types: frozenset[str]) -> Any:
    """Turn a parameter's text into the JSON value its schema types ask for, when it parses."""
    if "integer" in types and _is_integer(raw):
        return int(raw)
    if "number" in types:
        try:
            return float(raw) if not _is_integer(raw) else int(raw)
        except ValueError:
            pass
    if "boolean" in types and raw in ("true", "false"):
        return raw == "true"
    return raw


def _is_integer(raw: str) -> bool:
    digits = raw[1:] if raw[:1] in "+-" else raw
    # Python's int() refuses more than 4,300 digits; such a value is reported as not an integer.
    return digits.isascii() and digits.isdigit() and len(digits) <= 4000


def check_parameters(
    rules: RequestRules, sources: dict[str, Any]
) -> tuple[dict[str, Any], list[Problem]]:
    """Validate path, query and header values; return the coerced values and the problems."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for rule in rules.parameters:
        source = sources[rule.location]
        raw = source.get(rule.name)
        if raw is None:
            if rule.required:
                problems.append(Problem(rule.location, rule.name, "required parameter is missing"))
            else:
                values[rule.name] = rule.default
            continue
        problem = _repeated(rule, source) or _out_of_range(rule, raw)
        if problem is None:
            value = coerce(raw, rule.types)
            error = next(rule.validator.iter_errors(value), None)
            if error is None:
                values[rule.name] = value
                continue
            problem = _parameter_problem(rule, error, raw)
        problems.append(problem)
    return values, problems


def _repeated(rule: ParameterRule, source: Any) -> Problem | None:
    # Only the query string can repeat a name; an array parameter may, others must not.
    if rule.location != "query" or "array" in rule.types:
        return None
    count = len(source.getlist(rule.name))
    if count < 2:
        return None
    reason = f"given more than once ({count} times); send it once"
    return Problem(rule.location, rule.name, reason)


def _out_of_range(rule: ParameterRule, raw: str) -> Problem | None:
    digits = raw[1:] if raw[:1] in "+-" else raw
    if "integer" not in rule.types or _is_integer(raw) or not digits.isdigit():
        return None
    if not digits.isascii():
        return None
    low, high = rule.bounds
    limits = f"between {low} and {high}" if low is not None and high is not None else "smaller"
    reason = f"integer with {len(digits)} digits is out of range (expected {limits})"
    return Problem(rule.location, rule.name, reason)


def _parameter_problem(rule: ParameterRule, error: Any, raw: str) -> Problem:
    kind = type(error.kind).__name__
    if kind == "Enum":
        return _enum_problem(rule.location, rule.name, error, repr(raw))
    if rule.expected is not None and kind in ("AnyOf", "OneOf", "Format"):
        reason = f"{shorten(repr(raw), 60)} is not {rule.expected}"
        return Problem(rule.location, rule.name, reason)
    return Problem(rule.location, rule.name, _describe(error, raw))


def _enum_problem(location: str, name: str, error: Any, shown: str) -> Problem:
    # The library's message names two values and counts the rest; list them all.
    allowed = list(error.kind.options)
    listed = ", ".join(json.dumps(option) for option in allowed)
    reason = f"{shorten(shown, 60)} is not one of {listed}"
    return Problem(location, name, shorten(reason), {"allowed": allowed})


MAX_REASON_CHARS = 300


def _describe(error: Any, raw: str) -> str:
    message = str(error.message).replace(json.dumps(raw), repr(raw), 1)
    return shorten(message)


def shorten(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """Cut a message that quotes a huge value, keeping its start and end."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}...{text[-half:]}"


def check_content_encoding(header: str | None) -> None:
    """Reject a compressed body with 415, because the mock reads only uncompressed JSON."""
    if header is None:
        return
    codings = [coding.strip().lower() for coding in header.split(",") if coding.strip()]
    if all(coding == "identity" for coding in codings):
        return
    shown = shorten(header, 40)
    raise ApiError(
        415,
        f"Content-Encoding {shown!r} is not supported; send the JSON body uncompressed.",
        {
            "field": "Content-Encoding",
            "location": "header",
            "reason": "unsupported content coding",
            "allowed": ["identity"],
        },
    )


def parse_json_body(raw: bytes) -> Any:
    """Decode a request body that must be one JSON object, raising a 400 that explains why not."""
    if not raw.strip():
        raise _body_error("Request body is empty; expected a JSON object.", "/", "body is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"invalid UTF-8 at byte {exc.start}"
        raise _body_error(f"Request body is not valid UTF-8 ({reason}).", "/", reason) from exc
    try:
        data = json.loads(
            text, parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float
        )
    except _NumberRejected as exc:
        raise _body_error(f"{exc.headline}: {exc.reason}.", "/", exc.reason) from exc
    except json.JSONDecodeError as exc:
        reason = f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
        raise _body_error(f"Request body is not valid JSON: {reason}.", "/", reason) from exc
    except RecursionError as exc:
        reason = "nesting is too deep"
        raise _body_error(f"Request body is not valid JSON: {reason}.", "/", reason) from exc
    if ("\\ud" in text or "\\uD" in text) and _has_lone_surrogate(data):
        reason = "a \\u escape encodes a lone UTF-16 surrogate, which is not a character"
        raise _body_error(f"Request body is not valid JSON text: {reason}.", "/", reason)
    if not isinstance(data, dict):
        kind = "an array" if isinstance(data, list) else f"a JSON {_json_type(data)}"
        reason = f"expected a JSON object, got {kind}"
        raise _body_error(f"Request body must be a JSON object, got {kind}.", "/", reason)
    return data


# Python's int() refuses longer digit strings (CVE-2020-10735); JSON allows them.
MAX_INTEGER_DIGITS = 4300


class _NumberRejected(Exception):
    """A number token that JSON forbids or that cannot be held, raised from a json.loads hook."""

    def __init__(
        self, reason: str, headline: str = "Request body has a number out of range"
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.headline = headline


def _reject_constant(name: str) -> Any:
    reason = f"{name} is not a JSON number (JSON has no NaN or Infinity)"
    raise _NumberRejected(reason, "Request body is not valid JSON")


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise _NumberRejected(
            f"an integer has {digits} digits, more than the {MAX_INTEGER_DIGITS} allowed"
        )
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NumberRejected(f"number {shorten(text, 40)} is too large for a double")
    return value


def _has_lone_surrogate(data: Any) -> bool:
    # Paired surrogates decode to one character; a lone one cannot be encoded as UTF-8.
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _body_error(message: str, pointer: str, reason: str) -> ApiError:
    return ApiError(400, message, {"field": pointer, "location": "body", "reason": reason})


def check_body(rules: RequestRules, data: Any) -> list[Problem]:
    """Validate a decoded JSON body against the operation's schema."""
    if rules.body_validator is None:
        return []
    problems = []
    for error in rules.body_validator.iter_errors(data):
        path = list(error.instance_path)
        pointer = "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in path)
        where = _pointer_of(error, pointer)
        if type(error.kind).__name__ == "Enum":
            shown = json.dumps(error.instance, ensure_ascii=False)
            problems.append(_enum_problem("body", where, error, shown))
            continue
        problems.append(Problem("body", where, shorten(str(error.message))))
    return problems


def _pointer_of(error: Any, pointer: str) -> str:
    # A missing or unexpected property is reported on its parent object; name the property.
    kind = type(error.kind).__name__
    if kind == "Required":
        name = getattr(error.kind, "property", None)
        if isinstance(name, str):
            return pointer.rstrip("/") + "/" + name
    if kind == "AdditionalProperties":
        unexpected = getattr(error.kind, "unexpected", None)
        if unexpected:
            return pointer.rstrip("/") + "/" + str(unexpected[0])
    return pointer


def invalid_request(problems: list[Problem]) -> ApiError:
    """Build the 400 for a list of problems; the first one is named at the top level."""
    first = problems[0]
    where = "Request body" if first.location == "body" else f"{first.location.title()} parameter"
    message = f"{where} is invalid: {first.field}: {first.reason}."
    if len(problems) > 1:
        message = message[:-1] + f" (and {len(problems) - 1} more)."
    details: dict[str, Any] = dict(first.to_json())
    if len(problems) > 1:
        details["errors"] = [problem.to_json() for problem in problems]
    return ApiError(400, message, details)
