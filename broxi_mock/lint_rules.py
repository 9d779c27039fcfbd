"""Project rules of `broxi-mock lint`: what every operation declares, unused components,
ambiguous paths, and fixtures that must match the API schemas they stand for."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema_rs

from broxi_mock.errors import MockError
from broxi_mock.spec import HTTP_METHODS, Spec, read_yaml

# Statuses every operation that needs a token must document.
REQUIRED_STATUSES = ("401", "429")
COMPONENT_SECTIONS = ("schemas", "responses", "parameters", "examples", "headers", "requestBodies")
TEMPLATE = re.compile(r"^\{[^}]+\}$")


@dataclass(frozen=True)
class FixtureSchema:
    """The API schema that entries of one fixture file are visible as, and the defaults they get."""

    key: str
    schema: str
    # Values the mock fills in when a fixture entry leaves the field out.
    defaults: dict[str, Any] = field(default_factory=dict)
    # A list inside each entry (key, schema) and the id the mock gives its items.
    nested: tuple[str, str] | None = None


FIXTURE_SCHEMAS = {
    "flows.yaml": FixtureSchema("flows", "Flow"),
    "sessions.yaml": FixtureSchema(
        "sessions",
        "Session",
        {"status": "active", "metadata": {}, "user_id": None},
        ("messages", "Message"),
    ),
}


def escape(part: str | int) -> str:
    """Escape one JSON pointer segment."""
    return str(part).replace("~", "~0").replace("/", "~1")


def operation_findings(spec: Spec) -> Iterator[tuple[str, str]]:
    """Yield (pointer, problem) for operations missing an id, summary, tag or auth responses."""
    declared_tags = {tag.get("name") for tag in spec.document.get("tags") or []}
    for section in ("paths", "webhooks"):
        for path, item in (spec.document.get(section) or {}).items():
            item = spec.resolve(item)
            for method in HTTP_METHODS:
                if method not in item:
                    continue
                pointer = f"/{section}/{escape(path)}/{method}"
                yield from _operation_problems(spec, item[method], pointer, declared_tags, section)


def _operation_problems(
    spec: Spec, operation: dict[str, Any], pointer: str, declared_tags: set[Any], section: str
) -> Iterator[tuple[str, str]]:
    for key in ("operationId", "summary"):
        if not operation.get(key):
            yield pointer, f"operation has no {key}"
    tags = operation.get("tags") or []
    if not tags:
        yield pointer, "operation has no tag"
    for tag in tags:
        if tag not in declared_tags:
            yield f"{pointer}/tags", f"tag {tag!r} is not declared under /tags"
    # Webhooks are requests the API sends, so they carry no token and no rate limit.
    security = operation.get("security", spec.document.get("security"))
    if section == "webhooks" or not security:
        return
    responses = operation.get("responses") or {}
    for status in REQUIRED_STATUSES:
        if status not in responses:
            yield f"{pointer}/responses", f"operation needs a token but has no {status} response"


def unused_components(spec: Spec) -> Iterator[tuple[str, str]]:
    """Yield (pointer, problem) for components that nothing outside them reaches."""
    components = spec.document.get("components") or {}
    reached: set[str] = set()
    pending = list(_refs({k: v for k, v in spec.document.items() if k != "components"}))
    while pending:
        ref = pending.pop()
        if ref in reached or not ref.startswith("#/components/"):
            continue
        reached.add(ref)
        try:
            pending.extend(_refs(spec.lookup(ref)))
        except MockError:
            continue
    for section in COMPONENT_SECTIONS:
        for name in components.get(section) or {}:
            pointer = f"/components/{section}/{escape(name)}"
            if "#" + pointer not in reached:
                yield pointer, f"{section[:-1]} component is never referenced"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for key, value in node.items():
            # Discriminator mappings name schemas by reference too.
            if key == "mapping" and isinstance(value, dict):
                yield from (v for v in value.values() if isinstance(v, str))
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def ambiguous_paths(spec: Spec) -> Iterator[tuple[str, str]]:
    """Yield (pointer, problem) for path pairs that one request URL could match both ways."""
    paths = list(spec.document.get("paths") or {})
    for first, second in itertools.combinations(paths, 2):
        a, b = first.strip("/").split("/"), second.strip("/").split("/")
        if len(a) != len(b):
            continue
        literal_a = {i for i, part in enumerate(a) if not TEMPLATE.match(part)}
        literal_b = {i for i, part in enumerate(b) if not TEMPLATE.match(part)}
        if any(a[i] != b[i] for i in literal_a & literal_b):
            continue
        # A path whose literal segments include the other's is the more specific one and wins.
        if literal_a < literal_b or literal_b < literal_a:
            continue
        yield f"/paths/{escape(second)}", f"overlaps {first!r}: a URL can match both"


def fixture_findings(spec: Spec, folder: Path) -> Iterator[tuple[Path, str, str]]:
    """Yield (file, pointer, problem) for fixture entries that break the API schema they feed."""
    schemas = (spec.document.get("components") or {}).get("schemas") or {}
    for file_name, fixture in FIXTURE_SCHEMAS.items():
        path = folder / file_name
        if not path.is_file() or fixture.schema not in schemas:
            continue
        entries = (read_yaml(path) or {}).get(fixture.key) or []
        validator = _validator(spec, fixture.schema)
        for index, entry in enumerate(entries):
            pointer = f"/{fixture.key}/{index}"
            visible = {**fixture.defaults, **entry} if isinstance(entry, dict) else entry
            yield from _entry_findings(path, pointer, validator, schemas[fixture.schema], visible)
            if fixture.nested is None or not isinstance(entry, dict):
                continue
            key, schema_name = fixture.nested
            inner_validator = _validator(spec, schema_name)
            for inner, item in enumerate(entry.get(key) or []):
                # The mock numbers an entry's messages msg_001, msg_002, ...
                visible = {"id": f"msg_{inner + 1:03d}", **item} if isinstance(item, dict) else item
                yield from _entry_findings(
                    path, f"{pointer}/{key}/{inner}", inner_validator, schemas[schema_name], visible
                )


def _validator(spec: Spec, schema_name: str) -> Any:
    schema = spec.schema_ref(f"#/components/schemas/{escape(schema_name)}")
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def _entry_findings(
    path: Path, pointer: str, validator: Any, schema: dict[str, Any], entry: Any
) -> Iterator[tuple[Path, str, str]]:
    if not isinstance(entry, dict):
        yield path, pointer, "entry is not a mapping"
        return
    # Fixtures hold more than the API shows (pacing, workspace); compare what the API shows.
    properties = schema.get("properties") or {}
    visible = {key: _as_json(value) for key, value in entry.items() if key in properties}
    for error in validator.iter_errors(visible):
        where = "/".join(escape(part) for part in error.instance_path)
        yield path, f"{pointer}/{where}" if where else pointer, error.message


def _as_json(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_json(item) for item in value]
    return value
