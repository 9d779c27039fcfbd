"""Per-request bookkeeping: the request id, one access log line and a request journal entry."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broxi_mock.logs import escape_controls
from mock_server.auth import mask_token
from mock_server.journal import JournalEntry, RequestJournal
from mock_server.routing import assign_request_id

access_logger = logging.getLogger("broxi_mock.access")
ADMIN_PREFIX = "/_mock/"


class AccessMiddleware:
    """Pure ASGI middleware around the whole app, so it records every response, preflights too.

    Requests to the admin routes under `/_mock/` are logged but not journaled, so reading the
    journal does not fill it.
    """

    def __init__(self, app: ASGIApp, journal: RequestJournal) -> None:
        self.app = app
        self.journal = journal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.time()
        tick = time.perf_counter()
        request_id = assign_request_id(scope)
        # An exception that escapes the app becomes a 500 further out.
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            duration_ms = (time.perf_counter() - tick) * 1000
            self._finish(scope, request_id, status, started_at, duration_ms)

    def _finish(
        self, scope: Scope, request_id: str, status: int, started_at: float, duration_ms: float
    ) -> None:
        path = scope["path"]
        is_admin = path.startswith(ADMIN_PREFIX)
        logging_on = access_logger.isEnabledFor(logging.INFO)
        if is_admin and not logging_on:
            return
        token, origin = _token_and_origin(scope)
        query = scope.get("query_string", b"").decode("latin-1")
        if logging_on:
            _log(scope, request_id, status, duration_ms, token, query)
        if is_admin:
            return
        entry = JournalEntry(
            sequence=self.journal.next_sequence(),
            request_id=request_id,
            method=scope["method"],
            path=path,
            query=query,
            status=status,
            started_at=started_at,
            duration_ms=duration_ms,
            operation_id=scope.get("broxi.operation_id"),
            token=token,
            origin=origin,
            prefer=scope.get("broxi.prefer"),
            chaos=scope.get("broxi.chaos"),
            error=scope.get("broxi.error"),
        )
        self.journal.record(entry)


def _token_and_origin(scope: Scope) -> tuple[str | None, str | None]:
    token = origin = None
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            # Only a masked prefix is kept: logs and the journal never show a credential.
            credential = value.decode("latin-1").strip().partition(" ")[2].strip()
            token = mask_token(credential) if credential else None
        elif name == b"origin":
            origin = value.decode("latin-1")
    return token, origin


def _log(
    scope: Scope, request_id: str, status: int, duration_ms: float, token: str | None, query: str
) -> None:
    method, path = scope["method"], scope["path"]
    # The path is percent-decoded: `%0A` would otherwise end the line and forge the next one.
    target = escape_controls(f"{path}?{query}" if query else path)
    client = scope.get("client")
    client_host = client[0] if client else None
    fields = {
        "method": method,
        "path": path,
        "query": query,
        "status": status,
        "duration_ms": round(duration_ms, 3),
        "request_id": request_id,
        "operation_id": scope.get("broxi.operation_id"),
        "token": token,
        "client": client_host,
    }
    access_logger.info(
        "%s %s %d %.1fms request_id=%s token=%s client=%s",
        method,
        target,
        status,
        duration_ms,
        request_id,
        token or "-",
        client_host or "-",
        extra={"fields": fields},
    )
