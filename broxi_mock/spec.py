"""Locate, read and query the OpenAPI document; shared by the mock and the contract kit."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from broxi_mock.errors import SpecError

PACKAGE_DIR = Path(__file__).resolve().parent
# libyaml's loader parses the spec about ten times faster than the pure-Python one.
YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def data_dir(name: str) -> Path:
    """Return a bundled data folder: inside the installed package, else at the repository root."""
    installed = PACKAGE_DIR / "data" / name
    if installed.is_dir():
        return installed
    return PACKAGE_DIR.parent / name


def bundled_spec_path() -> Path:
    """Return the path of the bundled public API document."""
    return data_dir("openapi") / "broxi.yaml"


def bundled_admin_spec_path() -> Path:
    """Return the path of the bundled admin API document."""
    return data_dir("openapi") / "admin.yaml"


def bundled_schemathesis_config() -> Path:
    """Return the Schemathesis settings the contract kit runs with."""
    installed = PACKAGE_DIR / "data" / "schemathesis.toml"
    return installed if installed.is_file() else PACKAGE_DIR.parent / "schemathesis.toml"


def bundled_fixtures_dir() -> Path:
    """Return the folder of the bundled fixtures."""
    return data_dir("fixtures")


def read_yaml(path: Path, error: type[Exception] = SpecError) -> Any:
    """Parse a YAML or JSON file, raising `error` with a one-line message on failure."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, expected a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot be read ({exc})") from exc
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=YAML_LOADER)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{path}: {where}invalid YAML ({problem})") from exc


@dataclass(frozen=True)
class Operation:
    """One operation of the document, with its path item's parameters merged in."""

    operation_id: str
    method: str
    path: str
    pointer: str
    definition: dict[str, Any] = field(repr=False)
    parameters: tuple[dict[str, Any], ...] = field(repr=False)


class Spec:
    """An OpenAPI document with local `$ref` resolution and operation look-up."""

    def __init__(self, document: dict[str, Any], source: Path | None = None) -> None:
        self.document = document
        self.source = source
        self.base_path = _base_path(document)

    def resolve(self, node: Any) -> Any:
        """Follow `$ref` links until a node that is not a reference."""
        seen: set[str] = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                raise SpecError(f"{self.source}: {ref}: circular $ref")
            seen.add(ref)
            node = self.lookup(ref)
        return node

    def lookup(self, ref: str) -> Any:
        """Return the node a local reference such as `#/components/schemas/Run` points to."""
        if not ref.startswith("#/"):
            raise SpecError(f"{self.source}: {ref!r}: only local references are supported")
        node: Any = self.document
        for raw in ref[2:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise SpecError(f"{self.source}: {ref}: reference points to nothing")
        return node

    def operations(self) -> list[Operation]:
        """List every operation under `paths`, in document order."""
        found = []
        for path, item in (self.document.get("paths") or {}).items():
            item = self.resolve(item)
            shared = [self.resolve(p) for p in item.get("parameters", [])]
            for method in HTTP_METHODS:
                if method not in item:
                    continue
                definition = item[method]
                own = [self.resolve(p) for p in definition.get("parameters", [])]
                own_keys = {(p["name"], p["in"]) for p in own}
                merged = [p for p in shared if (p["name"], p["in"]) not in own_keys] + own
                escaped = path.replace("~", "~0").replace("/", "~1")
                found.append(
                    Operation(
                        operation_id=definition.get("operationId", f"{method} {path}"),
                        method=method.upper(),
                        path=path,
                        pointer=f"/paths/{escaped}/{method}",
                        definition=definition,
                        parameters=tuple(merged),
                    )
                )
        return found

    def schema_ref(self, ref: str) -> dict[str, Any]:
        """Wrap a reference into a standalone JSON Schema that can resolve the document's refs."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.reachable_components({"$ref": ref}),
            "$ref": ref,
        }

    def schema_of(self, schema: Any) -> Any:
        """Embed an inline schema so that its local references resolve against this document."""
        if isinstance(schema, dict) and set(schema) == {"$ref"}:
            return self.schema_ref(schema["$ref"])
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.reachable_components(schema),
            "allOf": [schema],
        }

    def reachable_components(self, node: Any) -> dict[str, dict[str, Any]]:
        """Pick the components that `node` reaches through `$ref`, directly or through others.

        A compiled validator keeps every schema it is given, so embedding only these instead of
        all components keeps each validator small.
        """
        components = self.document.get("components")
        if not isinstance(components, dict):
            return {}
        picked: dict[str, dict[str, Any]] = {}
        pending = [node]
        while pending:
            current = pending.pop()
            if isinstance(current, list):
                pending.extend(current)
            elif isinstance(current, dict):
                pending.extend(current.values())
                found = _component_of(components, current.get("$ref"))
                if found is not None and found[1] not in picked.get(found[0], {}):
                    picked.setdefault(found[0], {})[found[1]] = found[2]
                    pending.append(found[2])
        return picked


def _component_of(components: dict[str, Any], ref: Any) -> tuple[str, str, Any] | None:
    # `#/components/schemas/Run/properties/id` needs the whole `Run` entry of `schemas`.
    if not isinstance(ref, str) or not ref.startswith("#/components/"):
        return None
    parts = [part.replace("~1", "/").replace("~0", "~") for part in ref.split("/")[2:4]]
    if len(parts) < 2:
        return None
    section = components.get(parts[0])
    if not isinstance(section, dict) or parts[1] not in section:
        return None
    return parts[0], parts[1], section[parts[1]]


def _base_path(document: dict[str, Any]) -> str:
    # A malformed `servers` is reported by the structural check; until then it means "/".
    servers = document.get("servers")
    first = servers[0] if isinstance(servers, list) and servers else {}
    url = first.get("url", "/") if isinstance(first, dict) else "/"
    try:
        return urlsplit(str(url)).path.rstrip("/")
    except ValueError:
        return ""


def load_spec(path: Path | None = None) -> Spec:
    """Read an OpenAPI document from `path` (the bundled one by default)."""
    source = path or bundled_spec_path()
    document = read_yaml(source)
    if not isinstance(document, dict):
        raise SpecError(f"{source}: top level is {type(document).__name__}, expected a mapping")
    version = document.get("openapi")
    if not isinstance(version, str) or not version.startswith("3.1"):
        raise SpecError(f"{source}: /openapi: version {version!r} unsupported (expected 3.1.x)")
    if not isinstance(document.get("paths"), dict):
        raise SpecError(f"{source}: /paths: missing or not a mapping")
    return Spec(document, source)
