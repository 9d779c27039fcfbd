"""Routes, validation and responses come from the spec alone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from tests.conftest import REPO_ROOT, auth
from tests.helpers import call_and_leave

NEW_OPERATION = {
    "get": {
        "operationId": "getFlowVersions",
        "summary": "List a flow's versions",
        "description": "An operation that exists only in the spec, with no handler.",
        "tags": ["Flows"],
        "parameters": [
            {"$ref": "#/components/parameters/FlowId"},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 5}},
        ],
        "responses": {
            "200": {
                "description": "The versions.",
                "content": {
                    "application/json": {
                        "schema": {"type": "object"},
                        "example": {"versions": ["v1", "v2"]},
                    }
                },
            }
        },
    }
}


def spec_with_new_operation(tmp_path: Path) -> Path:
    document = yaml.safe_load((REPO_ROOT / "openapi" / "broxi.yaml").read_text())
    document["paths"]["/flows/{flow_id}/versions"] = NEW_OPERATION
    path = tmp_path / "extended.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_new_spec_operation_is_served(
    tmp_path: Path, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(spec_path=spec_with_new_operation(tmp_path))

    response = client.get("/v1/flows/flow_abc123/versions", headers=auth())

    assert response.status_code == 200
    assert response.json() == {"versions": ["v1", "v2"]}
    assert response.headers["X-RateLimit-Limit"] == "1000"


def test_new_spec_operation_is_validated(
    tmp_path: Path, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(spec_path=spec_with_new_operation(tmp_path))

    response = client.get("/v1/flows/flow_abc123/versions?limit=9", headers=auth())
    anonymous = client.get("/v1/flows/flow_abc123/versions")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "limit"
    assert anonymous.status_code == 401


def test_spec_operation_methods_share_allow(
    tmp_path: Path, make_client: Callable[..., TestClient]
) -> None:
    document: dict[str, Any] = yaml.safe_load((REPO_ROOT / "openapi" / "broxi.yaml").read_text())
    document["paths"]["/flows"]["delete"] = {
        "operationId": "deleteFlows",
        "summary": "Delete every flow",
        "responses": {"204": {"description": "Deleted."}},
    }
    path = tmp_path / "extended.yaml"
    path.write_text(yaml.safe_dump(document))
    client = make_client(spec_path=path)

    response = client.put("/v1/flows", headers=auth())

    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "DELETE"}


def test_empty_success_answers_without_body(
    tmp_path: Path, make_client: Callable[..., TestClient]
) -> None:
    document: dict[str, Any] = yaml.safe_load((REPO_ROOT / "openapi" / "broxi.yaml").read_text())
    document["paths"]["/flows/{flow_id}"]["delete"] = {
        "operationId": "deleteFlow",
        "summary": "Delete a flow",
        # A path template's parameter must be declared, or the spec check stops start-up.
        "parameters": [{"$ref": "#/components/parameters/FlowId"}],
        "responses": {"204": {"description": "Deleted."}},
    }
    path = tmp_path / "extended.yaml"
    path.write_text(yaml.safe_dump(document))
    client = make_client(spec_path=path)

    response = client.delete("/v1/flows/flow_abc123", headers=auth())

    assert response.status_code == 204
    assert response.content == b""


def test_fixed_path_rejects_templated_methods(client: TestClient) -> None:
    response = client.delete("/_mock/webhooks/deliveries")

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.json()["error"]["details"]["allowed"] == ["GET", "HEAD"]


def test_templated_path_still_takes_other_ids(client: TestClient) -> None:
    added = client.post("/_mock/webhooks", json={"url": "http://127.0.0.1:4011/"})

    removed = client.delete(f"/_mock/webhooks/{added.json()['id']}")

    assert removed.status_code == 204


def test_abandoned_upload_is_quiet_499(
    make_app: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()

    asyncio.run(call_and_leave(app, "/v1/flows/flow_abc123/run", b'{"input": ', 100))

    assert app.state.journal.latest()[0].status == 499
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert app.state.store.count_runs()["running"] == 0
