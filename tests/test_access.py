"""Access logging: one line per request, masked tokens, text or JSON."""

from __future__ import annotations

import json
import logging
import logging.config
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from starlette.testclient import TestClient

from broxi_mock.logs import TEXT_FORMAT, JsonFormatter, logging_config
from tests.conftest import PRO_TOKEN, LiveServer, auth


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "broxi_mock.access"]


def test_one_line_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="broxi_mock.access")

    client.get("/v1/flows?limit=1", headers={**auth(), "X-Request-ID": "trace-7"})
    client.get("/v1/flows/flow_missing", headers=auth())

    records = access_records(caplog)
    assert len(records) == 2
    assert records[0].getMessage().startswith("GET /v1/flows?limit=1 200 ")
    assert "request_id=trace-7" in records[0].getMessage()
    assert records[1].getMessage().startswith("GET /v1/flows/flow_missing 404 ")


def test_access_fields_are_structured(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="broxi_mock.access")

    client.post("/v1/flows/flow_abc123/run", json={"input": "Hi"}, headers=auth())

    fields = access_records(caplog)[0].fields  # type: ignore[attr-defined]
    assert fields["method"] == "POST"
    assert fields["path"] == "/v1/flows/flow_abc123/run"
    assert fields["status"] == 200
    assert fields["operation_id"] == "runFlow"
    assert fields["token"] == "bx_tes..."
    assert fields["duration_ms"] > 0


def test_token_never_logged_in_full(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    client.get("/v1/flows", headers=auth())
    client.get("/v1/flows", headers={"Authorization": "Bearer bx_live_secret_token_123456"})
    client.get("/v1/flows", headers={"Authorization": "Basic dXNlcjpwYXNzd29yZA=="})

    assert PRO_TOKEN not in caplog.text
    assert "bx_live_secret_token_123456" not in caplog.text
    assert "dXNlcjpwYXNzd29yZA==" not in caplog.text


@pytest.fixture
def serve_logging() -> Iterator[Callable[[bool], list[logging.LogRecord]]]:
    """Apply the `serve` logging settings; restore the loggers it changes afterwards."""
    names = ("broxi_mock", "broxi_mock.access", "uvicorn", "uvicorn.access")
    saved = [(logging.getLogger(n), logging.getLogger(n).__dict__.copy()) for n in names]
    captured: list[logging.LogRecord] = []

    def apply(access_log: bool) -> list[logging.LogRecord]:
        logging.config.dictConfig(logging_config("info", "text", access_log))
        collector = logging.Handler()
        collector.emit = captured.append  # type: ignore[method-assign]
        logging.getLogger("broxi_mock.access").addHandler(collector)
        return captured

    yield apply
    for logger, state in saved:
        logger.__dict__.clear()
        logger.__dict__.update(state)


@pytest.mark.parametrize(("access_log", "lines"), [(True, 1), (False, 0)], ids=["on", "off"])
def test_access_log_can_be_turned_off(
    client: TestClient,
    serve_logging: Callable[[bool], list[logging.LogRecord]],
    access_log: bool,
    lines: int,
) -> None:
    captured = serve_logging(access_log)

    client.get("/v1/flows", headers=auth())

    assert len(captured) == lines


def test_json_formatter_writes_one_object() -> None:
    record = logging.LogRecord(
        "broxi_mock.access", logging.INFO, __file__, 1, "GET %s", ("/",), None
    )
    record.fields = {"status": 200, "request_id": "req_1"}

    line = JsonFormatter().format(record)

    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "GET /"
    assert entry["level"] == "info"
    assert entry["logger"] == "broxi_mock.access"
    assert entry["status"] == 200
    assert entry["time"].endswith("Z")


@pytest.mark.e2e
def test_serve_logs_json_lines(live_server: Callable[..., LiveServer]) -> None:
    server = live_server("--log-format", "json", "--stream-delay-ms", "0")

    httpx.get(f"{server.url}/v1/flows", headers={**auth(), "X-Request-ID": "json-log-1"}, timeout=5)

    lines = [json.loads(line) for line in read_lines_until(server, "json-log-1")]
    access = [line for line in lines if line.get("request_id") == "json-log-1"]
    assert len(access) == 1
    assert access[0]["logger"] == "broxi_mock.access"
    assert access[0]["status"] == 200
    assert access[0]["path"] == "/v1/flows"
    assert access[0]["token"] == "bx_tes..."
    assert any(line.get("message", "").startswith("broxi-mock ") for line in lines)
    assert PRO_TOKEN not in server.output()


def read_lines_until(server: LiveServer, marker: str, timeout: float = 5.0) -> list[str]:
    """Return the server's output lines once a line containing `marker` was written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = server.output()
        if marker in output:
            return [line for line in output.splitlines() if line.strip()]
        time.sleep(0.05)
    raise AssertionError(f"no log line with {marker!r} within {timeout} s:\n{server.output()}")


@pytest.mark.parametrize(
    ("path", "escaped"),
    [("/v1/flows/flow_abc123%0A", "flow_abc123\\x0a 4"), ("/v1/flows/x%00y", "x\\x00y 4")],
    ids=["newline", "nul"],
)
def test_control_characters_in_path_are_escaped(
    client: TestClient, caplog: pytest.LogCaptureFixture, path: str, escaped: str
) -> None:
    caplog.set_level(logging.INFO, logger="broxi_mock.access")

    client.get(path, headers=auth())

    message = access_records(caplog)[0].getMessage()
    assert escaped in message
    assert "\n" not in message
    assert "\x00" not in message


def test_text_format_escapes_any_message() -> None:
    factory = logging_config("info", "text")["formatters"]["default"]["()"]
    formatter = factory(fmt=TEXT_FORMAT)
    record = logging.LogRecord("broxi_mock.x", logging.INFO, __file__, 1, "a\nb", None, None)

    line = formatter.format(record)

    assert line.endswith("broxi_mock.x: a\\x0ab")
