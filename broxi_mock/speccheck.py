"""Structural checks of an OpenAPI document, each problem at a JSON pointer of the document.

`serve` stops at the first problem and `lint` lists them all. openapi-spec-validator does most
of the work. The checks here run first because they cover what makes it crash (a dangling
or circular `$ref`) or report a pointer relative to a schema (an invalid `pattern`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs

from broxi_mock.errors import SpecError
from broxi_mock.spec import Spec, bundled_admin_spec_path, bundled_spec_path, load_spec

# Values under these keys are data, not parts of the document's structure.
DATA_KEYS = frozenset({"example", "examples", "default", "const", "enum"})
Problem = tuple[str, str]


def escape(part: str | int) -> str:
    """Escape one JSON pointer segment."""
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer_of(parts: Any) -> str:
    """Join path segments into a JSON pointer."""
    return "".join("/" + escape(part) for part in parts) or "/"


def load_checked_spec(path: Path) -> Spec:
    """Load a document and raise `SpecError` with one line on its first structural problem."""
    spec = load_spec(path)
    # The bundled documents pass `broxi-mock lint` in the test suite, and importing
    # openapi-spec-validator costs the server about 17 MB, so only other documents pay for it.
    bundled = path.resolve() in (bundled_spec_path().resolve(), bundled_admin_spec_path().resolve())
    problems = _own_problems(spec) if bundled else spec_problems(spec)
    for pointer, message in problems:
        raise SpecError(f"{spec.source}: {pointer}: {message}")
    return spec


def spec_problems(spec: Spec) -> list[Problem]:
    """Return the document's structural problems; the first stage that finds any stops."""
    paths = spec.document.get("paths")
    unrooted = [
        (f"/paths/{escape(path)}", f"path {path!r} does not start with '/'")
        for path in (paths if isinstance(paths, dict) else {})
        if isinstance(path, str) and not path.startswith(("/", "x-"))
    ]
    if unrooted:
        return unrooted
    from openapi_spec_validator import OpenAPIV31SpecValidator

    validator = OpenAPIV31SpecValidator(spec.document)
    shape = [
        (pointer_of(error.absolute_path), error.message.splitlines()[0])
        for error in validator.schema_validator.iter_errors(spec.document)
    ]
    if shape:
        return shape
    own = _own_problems(spec)
    if own:
        return own
    try:
        return [_locate(spec.document, error) for error in validator.iter_errors()]
    except (RecursionError, LookupError, TypeError, ValueError, AttributeError) as exc:
        # NOTE: a document that crashes the validator in a way not checked above gets this
        # line without a precise pointer.
        return [("/", f"cannot be validated ({type(exc).__name__}: {str(exc)[:200]})")]


def _own_problems(spec: Spec) -> list[Problem]:
    return [*_reference_problems(spec), *_pattern_problems(spec.document, ""), *_servers(spec)]


def _locate(document: Any, error: Any) -> Problem:
    # Errors inside a schema carry a path relative to that schema: find where it is.
    message = error.message.splitlines()[0]
    parts = list(error.absolute_path)
    if _follow(document, parts) is not _MISSING:
        return pointer_of(parts), message
    for prefix in _nodes(document, []):
        if _follow(_follow(document, prefix), parts) == error.instance:
            return pointer_of(prefix + parts), message
    return pointer_of(parts), f"{message} (in a schema at this relative path)"


_MISSING = object()


def _follow(node: Any, parts: list[Any]) -> Any:
    for part in parts:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            node = node[part]
        else:
            return _MISSING
    return node


def _nodes(node: Any, path: list[Any]) -> Iterator[list[Any]]:
    if isinstance(node, dict):
        yield path
        for key, value in node.items():
            yield from _nodes(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _nodes(value, [*path, index])


def _reference_problems(spec: Spec) -> Iterator[Problem]:
    for pointer, ref in _refs(spec.document, ""):
        where = f"{pointer}/$ref"
        if not isinstance(ref, str) or not ref.startswith("#/"):
            yield where, f"{ref!r} is not a local reference (expected '#/...')"
            continue
        problem = _chain_problem(spec, ref)
        if problem is not None:
            yield where, problem


def _chain_problem(spec: Spec, ref: str) -> str | None:
    # Follow a chain of references; one that comes back to itself never reaches a value.
    seen: list[str] = []
    current: Any = {"$ref": ref}
    while isinstance(current, dict) and "$ref" in current:
        target = current["$ref"]
        if target in seen:
            return f"circular $ref {' -> '.join([*seen, target])}"
        seen.append(target)
        try:
            current = spec.lookup(target)
        except SpecError:
            return f"{target!r} points to nothing"
    return None


def _refs(node: Any, pointer: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        if "$ref" in node:
            yield pointer, node["$ref"]
        for key, value in node.items():
            if key not in DATA_KEYS and not str(key).startswith("x-"):
                yield from _refs(value, f"{pointer}/{escape(key)}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, f"{pointer}/{index}")


def _pattern_problems(node: Any, pointer: str) -> Iterator[Problem]:
    if isinstance(node, list):
        for index, value in enumerate(node):
            yield from _pattern_problems(value, f"{pointer}/{index}")
        return
    if not isinstance(node, dict):
        return
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        try:
            jsonschema_rs.validator_for({"pattern": pattern})
        except ValueError:
            yield f"{pointer}/pattern", f"{pattern!r} is not a valid regular expression"
    for key, value in node.items():
        if key not in DATA_KEYS and not str(key).startswith("x-") and key != "pattern":
            yield from _pattern_problems(value, f"{pointer}/{escape(key)}")


def _servers(spec: Spec) -> Iterator[Problem]:
    for index, server in enumerate(spec.document.get("servers") or []):
        url = server.get("url") if isinstance(server, dict) else None
        if not isinstance(url, str):
            continue
        try:
            urlsplit(url)
        except ValueError as exc:
            yield f"/servers/{index}/url", f"{url!r} is not a valid URL ({exc})"


def check_handled_parameters(spec: Spec, reference_path: Path, handled: Iterable[str]) -> None:
    """Raise `SpecError` when an operation with a built-in handler lacks a parameter it reads.

    Handlers are written for the operations of the bundled document (`reference_path`), so an
    operation that reuses such an operationId must declare the same parameters.
    """
    if spec.source is not None and spec.source.resolve() == reference_path.resolve():
        return
    names = set(handled)
    reference = {op.operation_id: op for op in load_spec(reference_path).operations()}
    for operation in spec.operations():
        expected = reference.get(operation.operation_id)
        if operation.operation_id not in names or expected is None:
            continue
        declared = {(p.get("name"), p.get("in")) for p in operation.parameters}
        for parameter in expected.parameters:
            key = (parameter.get("name"), parameter.get("in"))
            if key not in declared:
                raise SpecError(
                    f"{spec.source}: {operation.pointer}/parameters: {operation.operation_id} "
                    f"needs the {key[1]} parameter {key[0]!r} that its built-in handler reads "
                    "(declare it, or give the operation another operationId)"
                )
