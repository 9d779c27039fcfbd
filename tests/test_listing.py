"""Listing flows: stable order, filter before paging, total independent of the page."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.conftest import ACME_TOKEN, auth


def list_flows(client: TestClient, query: str = "", token: str | None = None) -> dict[str, Any]:
    headers = auth(token) if token else auth()
    response = client.get(f"/v1/flows{query}", headers=headers)
    assert response.status_code == 200
    return dict(response.json())


def test_order_is_stable_oldest_first(client: TestClient) -> None:
    first = list_flows(client)
    again = list_flows(client)

    ids = [flow["id"] for flow in first["flows"]]
    assert ids == [flow["id"] for flow in again["flows"]]
    created = [flow["created_at"] for flow in first["flows"]]
    assert created == sorted(created)


def test_pages_join_to_full_list(client: TestClient) -> None:
    everything = list_flows(client)

    pages = [list_flows(client, f"?limit=3&offset={offset}") for offset in (0, 3, 6, 9)]

    assert [flow for page in pages for flow in page["flows"]] == everything["flows"]
    assert {page["total"] for page in pages} == {everything["total"]}
    assert [(page["limit"], page["offset"]) for page in pages] == [(3, 0), (3, 3), (3, 6), (3, 9)]
    assert pages[-1]["flows"] == []


def test_status_filter_applies_before_paging(client: TestClient) -> None:
    drafts = list_flows(client, "?status=draft&limit=1")
    second = list_flows(client, "?status=draft&limit=1&offset=1")

    assert drafts["total"] == 1
    assert [flow["status"] for flow in drafts["flows"]] == ["draft"]
    assert second["flows"] == []
    assert second["total"] == 1
    published = list_flows(client, "?status=published&limit=2&offset=5")
    assert published["total"] == 7
    assert [flow["status"] for flow in published["flows"]] == ["published", "published"]


def test_drafts_visible_to_own_workspace(client: TestClient) -> None:
    demo = list_flows(client, "?status=draft")
    acme = list_flows(client, "?status=draft", ACME_TOKEN)

    assert [flow["id"] for flow in demo["flows"]] == ["flow_drf111"]
    assert [flow["id"] for flow in acme["flows"]] == ["flow_acme01"]
