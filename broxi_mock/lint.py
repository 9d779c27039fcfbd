"""Check an OpenAPI document: its structure, and every example against its schema."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs

from broxi_mock.lint_rules import (
    ambiguous_paths,
    fixture_findings,
    operation_findings,
    unused_components,
)
from broxi_mock.spec import Spec
from broxi_mock.speccheck import spec_problems


@dataclass(frozen=True)
class Finding:
    """One problem, at a JSON pointer of the document."""

    pointer: str
    message: str
    # The fixture file the pointer is in; None for the spec itself.
    file: Path | None = None

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}"


def escape(part: str | int) -> str:
    """Escape one JSON pointer segment."""
    return str(part).replace("~", "~0").replace("/", "~1")


def lint_spec(spec: Spec, fixtures_dir: Path | None = None) -> list[Finding]:
    """Return structural problems, then examples, project rules and fixtures that break them."""
    findings = [Finding(pointer, message) for pointer, message in spec_problems(spec)]
    if findings:
        return findings
    findings = list(_example_findings(spec))
    for rule in (operation_findings, unused_components, ambiguous_paths):
        findings += [Finding(pointer, message) for pointer, message in rule(spec)]
    if fixtures_dir is not None:
        found = fixture_findings(spec, fixtures_dir)
        findings += [Finding(pointer, message, path) for path, pointer, message in found]
    return findings


def _example_findings(spec: Spec) -> Iterator[Finding]:
    for pointer, schema, example in _examples(spec, spec.document, ""):
        validator = jsonschema_rs.validator_for(spec.schema_of(schema), validate_formats=True)
        for error in validator.iter_errors(example):
            where = "/".join(escape(part) for part in error.instance_path)
            inside = f" at /{where}" if where else ""
            yield Finding(pointer, f"example does not match its schema{inside}: {error.message}")


def _examples(spec: Spec, node: Any, pointer: str) -> Iterator[tuple[str, Any, Any]]:
    """Yield (pointer, schema, value) for every example the document attaches to a schema."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _examples(spec, item, f"{pointer}/{index}")
        return
    if not isinstance(node, dict):
        return
    schema = node.get("schema")
    if isinstance(schema, dict):
        if "example" in node:
            yield f"{pointer}/example", schema, node["example"]
        for name, example in (node.get("examples") or {}).items():
            resolved = spec.resolve(example)
            if isinstance(resolved, dict) and "value" in resolved:
                yield f"{pointer}/examples/{escape(name)}", schema, resolved["value"]
    if _is_schema(node, pointer):
        for index, value in enumerate(node.get("examples") or []):
            yield f"{pointer}/examples/{index}", node, value
        if "example" in node:
            yield f"{pointer}/example", node, node["example"]
    for key, value in node.items():
        if key in ("example", "examples") or key.startswith("x-"):
            continue
        yield from _examples(spec, value, f"{pointer}/{escape(key)}")


def _is_schema(node: dict[str, Any], pointer: str) -> bool:
    inside_schema = "/schemas/" in pointer or "/schema/" in pointer or pointer.endswith("/schema")
    return inside_schema and isinstance(node.get("examples", []), list)
