"""Admin routes for webhook endpoints and deliveries."""

from __future__ import annotations

from starlette.testclient import TestClient

OWN_SECRET = "whsec_c2VwYXJhdGUtc2VjcmV0LWZvci1vbmUtZW5kcG9pbnQ="


def test_endpoint_can_be_added_listed_removed(client: TestClient) -> None:
    body = {"url": "http://127.0.0.1:4011/hooks", "events": ["session.created"]}

    added = client.post("/_mock/webhooks", json=body)
    listed = client.get("/_mock/webhooks")
    removed = client.delete(f"/_mock/webhooks/{added.json()['id']}")
    after = client.get("/_mock/webhooks")

    assert added.status_code == 201
    assert added.json()["events"] == ["session.created"]
    assert added.json()["own_secret"] is False
    assert listed.json() == {"endpoints": [added.json()]}
    assert removed.status_code == 204
    assert after.json() == {"endpoints": []}


def test_endpoint_without_events_gets_all(client: TestClient) -> None:
    added = client.post("/_mock/webhooks", json={"url": "https://127.0.0.1:4011/"})

    assert added.status_code == 201
    assert added.json()["events"] == [
        "flow.run.started",
        "flow.run.completed",
        "flow.run.failed",
        "session.created",
        "session.ended",
    ]


def test_listing_never_shows_whole_secret(client: TestClient) -> None:
    client.post("/_mock/webhooks", json={"url": "http://127.0.0.1:4011/", "secret": OWN_SECRET})

    listed = client.get("/_mock/webhooks")

    endpoint = listed.json()["endpoints"][0]
    assert endpoint["own_secret"] is True
    assert endpoint["secret"] == "whsec_c2Vw..."
    assert OWN_SECRET not in listed.text


def test_ftp_url_is_400_naming_url(client: TestClient) -> None:
    response = client.post("/_mock/webhooks", json={"url": "ftp://127.0.0.1/hooks"})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "INVALID_REQUEST",
        "message": "Webhook URL is invalid: 'ftp://127.0.0.1/hooks' must use http or https "
        "(got scheme 'ftp').",
        "details": {"field": "/url", "location": "body", "reason": "invalid webhook URL"},
    }


def test_url_with_credentials_is_400_unlisted(client: TestClient) -> None:
    url = "http://user:hunter2@127.0.0.1:4011/hooks"

    response = client.post("/_mock/webhooks", json={"url": url})
    listed = client.get("/_mock/webhooks")

    assert response.status_code == 400
    assert "contains credentials" in response.json()["error"]["message"]
    assert "hunter2" not in response.text
    assert "hunter2" not in listed.text


def test_unknown_event_is_400_naming_event(client: TestClient) -> None:
    body = {"url": "http://127.0.0.1:4011/", "events": ["flow.run.paused"]}

    response = client.post("/_mock/webhooks", json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["details"]["field"] == "/events/0"
    assert error["message"].startswith('Request body is invalid: /events/0: "flow.run.paused"')


def test_bad_secret_is_400_without_secret(client: TestClient) -> None:
    body = {"url": "http://127.0.0.1:4011/", "secret": "hunter2hunter2"}

    response = client.post("/_mock/webhooks", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "/secret"
    assert "hunter2hunter2" not in response.text


def test_removing_unknown_endpoint_is_404(client: TestClient) -> None:
    response = client.delete("/_mock/webhooks/wh_0000000000000000")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == (
        "Webhook endpoint 'wh_0000000000000000' not found."
    )


def test_redelivering_unknown_delivery_is_404(client: TestClient) -> None:
    response = client.post("/_mock/webhooks/deliveries/dlv_0000000000000000/redeliver")

    assert response.status_code == 404
    assert response.json()["error"]["details"]["field"] == "delivery_id"


def test_delivery_filter_rejects_unknown_status(client: TestClient) -> None:
    response = client.get("/_mock/webhooks/deliveries", params={"status": "lost"})

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "status"


def test_no_deliveries_without_endpoints(client: TestClient) -> None:
    response = client.get("/_mock/webhooks/deliveries")

    assert response.status_code == 200
    assert response.json() == {"deliveries": [], "total": 0, "limit": 100}


def test_lone_surrogate_endpoint_is_not_stored(client: TestClient) -> None:
    body = b'{"url": "http://127.0.0.1:4011/", "events": ["session.created\\ud800"]}'

    response = client.post(
        "/_mock/webhooks", content=body, headers={"Content-Type": "application/json"}
    )
    listed = client.get("/_mock/webhooks")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "/"
    assert "surrogate" in response.json()["error"]["details"]["reason"]
    assert listed.json() == {"endpoints": []}
