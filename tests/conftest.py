"""Shared fixtures: app and client builders, and a real `broxi-mock serve` on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mock_server import MockConfig, create_app

FREE_TOKEN = "bx_test_free_00000000000000000001"
PRO_TOKEN = "bx_test_pro_00000000000000000002"
READ_ONLY_TOKEN = "bx_test_readonly_000000000000004"
ACME_TOKEN = "bx_test_acme_00000000000000000005"
REPO_ROOT = Path(__file__).resolve().parent.parent


def auth(token: str = PRO_TOKEN) -> dict[str, str]:
    """Return the Authorization header of a token."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def make_app() -> Callable[..., Starlette]:
    """Build an app; keyword arguments override `MockConfig` fields (no stream pacing)."""

    def build(**overrides: Any) -> Starlette:
        settings: dict[str, Any] = {"stream_delay_ms": 0, **overrides}
        return create_app(MockConfig(**settings))

    return build


@pytest.fixture
def make_client(make_app: Callable[..., Starlette]) -> Iterator[Callable[..., TestClient]]:
    """Build an in-process client of a fresh app; each client is closed after the test."""
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        client = TestClient(make_app(**overrides), raise_server_exceptions=False)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """An in-process client of an app with the bundled spec and fixtures."""
    return make_client()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A `broxi-mock serve` process and its base URL."""

    process: subprocess.Popen[str]
    url: str
    output_path: Path

    def output(self) -> str:
        return self.output_path.read_text()


def start_server(tmp_path: Path, *args: str, timeout: float = 20.0) -> LiveServer:
    """Start `broxi-mock serve` on a free port and wait until it accepts connections."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    command = [sys.executable, "-m", "broxi_mock", "serve", "--port", str(port), *args]
    with log.open("w") as handle:
        # The child process keeps its own copy of the descriptor.
        process = subprocess.Popen(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"broxi-mock serve exited early:\n{log.read_text()}")
        try:
            httpx.get(f"{url}/_mock/openapi.json", timeout=0.5)
            return LiveServer(process, url, log)
        except httpx.TransportError:
            time.sleep(0.05)
    stop_server(process)
    raise RuntimeError(f"broxi-mock serve did not start within {timeout} s:\n{log.read_text()}")


def stop_server(process: subprocess.Popen[str]) -> None:
    """Stop a server started by `start_server`, killing it if it does not stop in 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start real servers for a test; every one is stopped when the test ends."""
    started: list[LiveServer] = []

    def start(*args: str) -> LiveServer:
        server = start_server(tmp_path, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_server(server.process)


@dataclass
class ReceivedRequest:
    """One request that reached a `RecordingReceiver`, and the status of its response."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0


class RecordingReceiver:
    """A webhook receiver on a free port of 127.0.0.1 that records requests and responds as set.

    `answer(request, attempt)` returns the status for a request, `attempt` counting requests
    with the same `webhook-id` from 1. While `hold` is set, requests wait (at most
    `MAX_HOLD_SECONDS`) until `release()` or `close()`, sending no response in the meantime.
    """

    MAX_HOLD_SECONDS = 15.0

    def __init__(
        self, answer: Callable[[ReceivedRequest, int], int] | None = None, hold: bool = False
    ) -> None:
        self.answer = answer or (lambda request, attempt: 204)
        self.hold = hold
        self.requests: list[ReceivedRequest] = []
        self.held_count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._attempts: dict[str, int] = {}
        self._changed = threading.Condition()
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {key.lower(): value for key, value in self.headers.items()}
                request = ReceivedRequest(self.path, headers, body)
                status = receiver._handle(request)
                if status == 0:
                    return
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _handle(self, request: ReceivedRequest) -> int:
        with self._changed:
            webhook_id = request.headers.get("webhook-id", "")
            attempt = self._attempts[webhook_id] = self._attempts.get(webhook_id, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.hold:
                self.held_count += 1
                self._changed.notify_all()
        if self.hold:
            self._released.wait(self.MAX_HOLD_SECONDS)
            status = 0
        else:
            status = self.answer(request, attempt)
        with self._changed:
            request.status = status
            self.in_flight -= 1
            self.requests.append(request)
            self._changed.notify_all()
        return status

    def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until `condition()` holds, at most `timeout` seconds; return whether it does."""
        with self._changed:
            return self._changed.wait_for(condition, timeout)

    def succeeded(self) -> list[ReceivedRequest]:
        """Return the requests that got a 2xx response, in the order they finished."""
        with self._changed:
            return [request for request in self.requests if 200 <= request.status < 300]

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., RecordingReceiver]]:
    """Start recording receivers for a test; every one is stopped when the test ends."""
    receivers: list[RecordingReceiver] = []

    def start(**options: Any) -> RecordingReceiver:
        receiver = RecordingReceiver(**options)
        receivers.append(receiver)
        return receiver

    yield start
    for receiver in receivers:
        receiver.close()
