"""The JSON bodies of flows, encoded once per flow instead of once per request."""

from __future__ import annotations

from typing import Any

from mock_server.encoding import encode_json
from mock_server.fixtures import FlowFixture
from mock_server.records import format_timestamp


class FlowBodies:
    """Encodes each flow's summary and detail the first time they are asked for.

    Flows are fixtures that do not change while the server runs. A flow object that replaces
    another one under the same id is encoded anew, so the cache never serves a stale body and
    keeps one entry per flow id.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._summaries: dict[str, tuple[FlowFixture, bytes]] = {}
        self._details: dict[str, tuple[FlowFixture, bytes]] = {}

    def summary(self, flow: FlowFixture) -> bytes:
        """Return the encoded summary of a flow, as listed by `GET /flows`."""
        cached = self._summaries.get(flow.id)
        if cached is None or cached[0] is not flow:
            cached = (flow, encode_json(self._summary_of(flow)))
            self._summaries[flow.id] = cached
        return cached[1]

    def detail(self, flow: FlowFixture) -> bytes:
        """Return the encoded flow with its config, as `GET /flows/{flow_id}` returns it."""
        cached = self._details.get(flow.id)
        if cached is None or cached[0] is not flow:
            document = self._summary_of(flow)
            del document["endpoint"]
            document["config"] = flow.config.model_dump()
            cached = (flow, encode_json(document))
            self._details[flow.id] = cached
        return cached[1]

    def page(self, flows: list[FlowFixture], total: int, limit: int, offset: int) -> bytes:
        """Encode one page of flow summaries with its paging fields."""
        summaries = b",".join(self.summary(flow) for flow in flows)
        tail = encode_json({"total": total, "limit": limit, "offset": offset})
        return b'{"flows":[' + summaries + b"]," + tail[1:]

    def _summary_of(self, flow: FlowFixture) -> dict[str, Any]:
        return {
            "id": flow.id,
            "name": flow.name,
            "description": flow.description,
            "status": flow.status,
            "created_at": format_timestamp(flow.created_at),
            "updated_at": format_timestamp(flow.updated_at),
            "endpoint": f"{self.base_url}/flows/{flow.id}/run",
        }
