"""Structural spec checks: `serve` stops with one line, `lint` lists findings with pointers."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from broxi_mock.cli import main
from broxi_mock.errors import SpecError
from mock_server import MockConfig, create_app
from tests.conftest import REPO_ROOT

Edit = Callable[[dict[str, Any]], None]
BUNDLED = yaml.safe_load((REPO_ROOT / "openapi" / "broxi.yaml").read_text())


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `serve` fail instead of blocking, should a bad spec ever pass its checks."""

    def reject_start(*args: object) -> None:
        raise AssertionError("serve started a server despite a bad spec")

    monkeypatch.setattr("broxi_mock.cli._run_server", reject_start)


def write_spec(tmp_path: Path, edit: Edit) -> Path:
    document = copy.deepcopy(BUNDLED)
    edit(document)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def circular(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    schemas["A"] = {"$ref": "#/components/schemas/B"}
    schemas["B"] = {"$ref": "#/components/schemas/A"}
    schemas["Run"]["properties"]["id"] = {"$ref": "#/components/schemas/A"}


def unrooted(document: dict[str, Any]) -> None:
    document["paths"]["flows"] = document["paths"].pop("/flows")


FLOWS_GET = "/paths/~1flows/get"
CASES = [
    (lambda d: d["paths"].update({"/x": 5}), '/paths/~1x: 5 is not of type "object"'),
    (lambda d: d["paths"]["/flows"].update(get=5), f'{FLOWS_GET}: 5 is not of type "object"'),
    (
        lambda d: d["paths"]["/flows"]["get"]["parameters"][0].pop("in"),
        f'{FLOWS_GET}/parameters/0: "in" is a required property',
    ),
    (lambda d: d.update(servers=[5]), '/servers/0: 5 is not of type "object"'),
    (lambda d: d.update(servers="x"), '/servers: "x" is not of type "array"'),
    (
        lambda d: d.update(servers=[{"url": "http://[::1"}]),
        "/servers/0/url: 'http://[::1' is not a valid URL (Invalid IPv6 URL)",
    ),
    (
        lambda d: d["components"]["schemas"]["Run"]["properties"]["id"].update(pattern="(["),
        "/components/schemas/Run/properties/id/pattern: '([' is not a valid regular expression",
    ),
    (unrooted, "/paths/flows: path 'flows' does not start with '/'"),
    (
        lambda d: d["paths"]["/flows"]["get"]["parameters"].__setitem__(
            0, {"$ref": "#/components/parameters/Nope"}
        ),
        f"{FLOWS_GET}/parameters/0/$ref: '#/components/parameters/Nope' points to nothing",
    ),
    (circular, "/components/schemas/A/$ref: circular $ref #/components/schemas/B -> "),
]
IDS = [
    "path-item-int",
    "operation-int",
    "parameter-without-in",
    "server-int",
    "servers-string",
    "server-url",
    "pattern",
    "no-leading-slash",
    "dangling-ref",
    "circular-ref",
]


@pytest.mark.parametrize(("edit", "problem"), CASES, ids=IDS)
def test_bad_spec_stops_serve_in_one_line(tmp_path: Path, edit: Edit, problem: str) -> None:
    path = write_spec(tmp_path, edit)

    result = CliRunner().invoke(main, ["serve", "--port", "0", "--spec", str(path)])

    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith(f"Error: {path}: {problem}")


@pytest.mark.parametrize(("edit", "problem"), CASES, ids=IDS)
def test_bad_spec_is_lint_finding(tmp_path: Path, edit: Edit, problem: str) -> None:
    path = write_spec(tmp_path, edit)

    result = CliRunner().invoke(main, ["lint", str(path)])

    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{path}: {problem}" in result.output


def test_reused_operation_without_its_parameter_stops(tmp_path: Path) -> None:
    def drop_flow_id(document: dict[str, Any]) -> None:
        item = document["paths"].pop("/flows/{flow_id}/run")
        parameters = item["post"]["parameters"]
        item["post"]["parameters"] = [p for p in parameters if "FlowId" not in p.get("$ref", "")]
        document["paths"]["/run"] = item

    path = write_spec(tmp_path, drop_flow_id)

    result = CliRunner().invoke(main, ["serve", "--port", "0", "--spec", str(path)])

    assert result.exit_code == 1
    assert result.output == (
        f"Error: {path}: /paths/~1run/post/parameters: runFlow needs the path parameter "
        "'flow_id' that its built-in handler reads (declare it, or give the operation another "
        "operationId)\n"
    )


def test_compile_failure_names_operation(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise ValueError('"([" is not a "regex"\nFailed validating')

    monkeypatch.setattr("mock_server.routing.compile_rules", fail)

    with pytest.raises(SpecError) as caught:
        create_app(MockConfig())

    assert str(caught.value).endswith(': cannot compile the operation ("([" is not a "regex")')
    assert "/paths/~1flows~1{flow_id}~1run/post" in str(caught.value)
