"""`broxi-mock lint` project rules: operations, unused components, overlapping paths, fixtures."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from broxi_mock.cli import main
from tests.conftest import REPO_ROOT


def lint_changed(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], *args: str
) -> tuple[int, str]:
    document = yaml.safe_load((REPO_ROOT / "openapi" / "broxi.yaml").read_text())
    change(document)
    spec = tmp_path / "changed.yaml"
    spec.write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(main, ["lint", str(spec), *args])
    return result.exit_code, result.output


def drop_429(document: dict[str, Any]) -> None:
    del document["paths"]["/runs/{run_id}"]["get"]["responses"]["429"]


def drop_summary(document: dict[str, Any]) -> None:
    del document["paths"]["/flows"]["get"]["summary"]


def drop_tags(document: dict[str, Any]) -> None:
    document["paths"]["/flows"]["get"]["tags"] = []


def add_unused_schema(document: dict[str, Any]) -> None:
    document["components"]["schemas"]["Orphan"] = {"type": "string"}


def copy_path(document: dict[str, Any], source: str, target: str) -> None:
    item = copy.deepcopy(document["paths"][source])
    for operation in item.values():
        if isinstance(operation, dict) and "operationId" in operation:
            operation["operationId"] += "Copy"
    document["paths"][target] = item


def path_operation(operation_id: str, parameter: str) -> dict[str, Any]:
    path_parameter = {
        "name": parameter,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    responses = {status: {"description": "A response."} for status in ("200", "401", "429")}
    return {
        "get": {"operationId": operation_id, "summary": "Read a thing.", "tags": ["Flows"],
                "parameters": [path_parameter], "responses": responses}
    }  # fmt: skip


def add_overlapping_path(document: dict[str, Any]) -> None:
    # "/things/list" matches both, and neither path is more specific than the other.
    document["paths"]["/things/{thing_id}"] = path_operation("getThing", "thing_id")
    document["paths"]["/{collection}/list"] = path_operation("listCollection", "collection")


@pytest.mark.parametrize(
    ("change", "pointer", "message"),
    [
        (drop_429, "/paths/~1runs~1{run_id}/get/responses", "has no 429 response"),
        (drop_summary, "/paths/~1flows/get", "operation has no summary"),
        (drop_tags, "/paths/~1flows/get", "operation has no tag"),
        (add_unused_schema, "/components/schemas/Orphan", "never referenced"),
        (add_overlapping_path, "/paths/~1{collection}~1list", "a URL can match both"),
    ],
    ids=["no 429", "no summary", "no tag", "unused schema", "overlapping paths"],
)
def test_rule_break_is_named(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], pointer: str, message: str
) -> None:
    code, output = lint_changed(tmp_path, change)

    assert code == 1
    assert f"{pointer}: " in output
    assert message in output


def test_more_specific_path_is_not_ambiguous(tmp_path: Path) -> None:
    def add_literal(document: dict[str, Any]) -> None:
        copy_path(document, "/flows", "/flows/featured")

    code, output = lint_changed(tmp_path, add_literal)

    assert code == 0, output


def test_fixture_breaking_schema_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "fixtures"
    shutil.copytree(REPO_ROOT / "fixtures", folder)
    flows = yaml.safe_load((folder / "flows.yaml").read_text())
    flows["flows"][2]["status"] = "archived"
    (folder / "flows.yaml").write_text(yaml.safe_dump(flows))

    result = CliRunner().invoke(main, ["lint", "--fixtures", str(folder)])

    assert result.exit_code == 1
    assert f"{folder / 'flows.yaml'}: /flows/2/status: " in result.output


def test_fixture_message_breaking_schema_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "fixtures"
    shutil.copytree(REPO_ROOT / "fixtures", folder)
    sessions = yaml.safe_load((folder / "sessions.yaml").read_text())
    sessions["sessions"][0]["messages"][1]["role"] = "system"
    (folder / "sessions.yaml").write_text(yaml.safe_dump(sessions))

    result = CliRunner().invoke(main, ["lint", "--fixtures", str(folder)])

    assert result.exit_code == 1
    assert "/sessions/0/messages/1/role: " in result.output
