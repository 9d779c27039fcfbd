"""The kit's optional webhooks check against the mock's own signed webhook delivery."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager

from click.testing import CliRunner

from broxi_mock.cli import main
from mock_server import MockConfig, create_app
from mock_server.webhook_settings import EndpointSettings, WebhookSettings
from tests.broken_mock import serve_in_thread
from tests.conftest import PRO_TOKEN, free_port

OTHER_SECRET = "whsec_" + base64.b64encode(b"a-different-secret-of-32-bytes!!!").decode()
WEBHOOKS_LINE = re.compile(r"^\s+webhooks\s+(\d+)\s+(FAILED|ok)$", re.MULTILINE)


@contextmanager
def delivering_mock(listen: str, secret: str | None) -> Iterator[str]:
    """Serve the mock; with a secret it delivers every event to `listen`, signed with it."""
    webhooks = WebhookSettings()
    if secret is not None:
        endpoint = EndpointSettings(url=f"http://{listen}/hooks")
        webhooks = WebhookSettings(endpoints=[endpoint], secret=secret)
    config = MockConfig(stream_delay_ms=0, rate_limit="1000000/min", webhooks=webhooks)
    with serve_in_thread(create_app(config), lifespan="on") as url:
        yield url


def run_with_webhooks(url: str, listen: str) -> tuple[int, str]:
    arguments = [
        "test", "--base-url", url, "--token", PRO_TOKEN, "--operation", "getFlow",
        "--phases", "examples", "--max-examples", "1", "--webhooks", "--webhook-listen", listen,
        "--webhook-wait", "3",
    ]  # fmt: skip
    result = CliRunner().invoke(main, arguments)
    return result.exit_code, result.output


def test_signed_webhooks_pass() -> None:
    listen = f"127.0.0.1:{free_port()}"

    with delivering_mock(listen, WebhookSettings().secret) as url:
        code, output = run_with_webhooks(url, listen)

    assert code == 0, output[-3000:]
    assert WEBHOOKS_LINE.findall(output) == [("0", "ok")]


def test_wrong_signature_is_reported() -> None:
    listen = f"127.0.0.1:{free_port()}"

    with delivering_mock(listen, OTHER_SECRET) as url:
        code, output = run_with_webhooks(url, listen)

    assert code == 1
    assert "Webhook signature does not verify" in output


def test_missing_webhooks_are_reported() -> None:
    listen = f"127.0.0.1:{free_port()}"

    with delivering_mock(listen, None) as url:
        code, output = run_with_webhooks(url, listen)

    assert code == 1
    assert "Webhook did not arrive" in output
