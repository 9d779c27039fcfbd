"""One request and its response, as the kit's checks read them from Schemathesis."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from schemathesis import Case, Response

from contract_tests.client import FollowUpClient
from contract_tests.contract import (
    Contract,
    contract_for,
    is_json_media_type,
    load_json,
    media_type_of,
)
from contract_tests.settings import current

# A generated case of any operation.
ApiCase = Case[Any]


@dataclass
class Exchange:
    """A checked case: which operation, what was sent, and what came back."""

    case: ApiCase
    response: Response
    contract: Contract
    operation_id: str
    headers: dict[str, str]
    body: Any = field(default=None)

    @property
    def label(self) -> str:
        return str(self.case.operation.label)

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def is_success(self) -> bool:
        return 200 <= self.response.status_code < 300

    @property
    def media_type(self) -> str:
        return media_type_of(self.headers.get("content-type"))

    @property
    def base_url(self) -> str:
        return str(self.case.operation.schema.get_base_url())

    @property
    def authorization(self) -> str | None:
        """Return the Authorization header the request carried, if any."""
        value = self.response.request.headers.get("Authorization")
        return value if isinstance(value, str) else None

    @property
    def is_resumed(self) -> bool:
        """Return whether the request resumed an earlier stream with `X-Run-ID`."""
        return bool(self.response.request.headers.get("X-Run-ID"))

    def sent(self, name: str) -> Any:
        """Return a top-level field of the JSON body the request sent, or None."""
        body = self.case.body
        return body.get(name) if isinstance(body, dict) else None

    def path_parameter(self, name: str) -> str | None:
        value = (self.case.path_parameters or {}).get(name)
        return None if value is None else str(value)

    def unknown_resource_url(self) -> str | None:
        """Return this GET operation's URL with every path parameter set to an unused id."""
        path = self.case.operation.path
        if self.case.method.upper() != "GET" or "{" not in path:
            return None
        unknown = f"unknown_{secrets.token_hex(6)}"
        return self.base_url.rstrip("/") + re.sub(r"\{[^}]+\}", unknown, path)

    def query(self) -> dict[str, str]:
        return {str(key): str(value) for key, value in (self.case.query or {}).items()}


def read_exchange(case: ApiCase, response: Response) -> Exchange:
    """Collect what the checks need from a case and its response."""
    document = case.operation.schema.raw_schema
    definition = case.operation.definition.raw
    headers = {name: values[0] for name, values in response.headers.items() if values}
    exchange = Exchange(
        case=case,
        response=response,
        contract=contract_for(document),
        operation_id=str(definition.get("operationId", case.operation.label)),
        headers=headers,
    )
    if is_json_media_type(exchange.media_type):
        exchange.body, _ = load_json(response.content)
    return exchange


class KitCheck:
    """Shared plumbing of the kit's checks: a follow-up client made on first use."""

    def __init__(self) -> None:
        self._client: FollowUpClient | None = None

    @property
    def client(self) -> FollowUpClient:
        if self._client is None:
            self._client = FollowUpClient(timeout=current().request_timeout)
        return self._client


class ProbeOnce:
    """Remembers which operations a check has already probed."""

    def __init__(self) -> None:
        self._done: set[str] = set()

    def first(self, exchange: Exchange) -> bool:
        """Tell whether this is the first success of the operation, and remember it."""
        if not exchange.is_success or exchange.label in self._done:
            return False
        self._done.add(exchange.label)
        return True
