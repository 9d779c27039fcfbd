"""Webhook settings: URL, event and secret checks, the config file and the flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from broxi_mock.cli import main
from broxi_mock.errors import ConfigError
from broxi_mock.webhook_contract import DEFAULT_SECRET, validate_secret
from mock_server.configfile import load_serve_file
from mock_server.webhook_settings import load_webhook_settings, validate_webhook_url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "ftp://127.0.0.1/hooks",
            "'ftp://127.0.0.1/hooks' must use http or https (got scheme 'ftp')",
        ),
        (
            "127.0.0.1:4011/hooks",
            "'127.0.0.1:4011/hooks' has no scheme (expected it to start with http:// or https://)",
        ),
        (
            "http:///hooks",
            "'http:///hooks' has no host (expected e.g. 'http://127.0.0.1:4011/hooks')",
        ),
        (
            "http://127.0.0.1/hooks#top",
            "'http://127.0.0.1/hooks#top' has a fragment, which is never sent; remove the '#' part",
        ),
        (
            "http://127.0.0.1:99999/x",
            "'http://127.0.0.1:99999/x' has port 99999 (expected 1 to 65535)",
        ),
        ("http://127.0.0.1:0/x", "'http://127.0.0.1:0/x' has port 0 (expected 1 to 65535)"),
        (
            "http://user:pass@127.0.0.1/",
            "URL for host '127.0.0.1' contains credentials (user:password@); remove them, "
            "because webhook URLs are listed and logged",
        ),
        (
            "http://xn--/",
            "'http://xn--/' is not a valid URL (Malformed A-label, no Punycode eligible content "
            "found)",
        ),
    ],
    ids=[
        "ftp",
        "no-scheme",
        "no-host",
        "fragment",
        "port-too-big",
        "port-0",
        "credentials",
        "idna",
    ],
)
def test_bad_webhook_url_is_rejected(url: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_webhook_url(url)

    assert str(caught.value) == message


def test_http_and_https_urls_are_accepted() -> None:
    urls = ["http://127.0.0.1:4011/hooks", "https://hooks.example.test/broxi?team=1"]

    accepted = [validate_webhook_url(url) for url in urls]

    assert accepted == urls


def test_short_secret_is_rejected() -> None:
    with pytest.raises(ValueError) as caught:
        validate_secret("whsec_c2hvcnQ=")

    assert str(caught.value).startswith("secret must encode 24 to 64 bytes (got 5; make one with")


def test_non_base64_secret_is_rejected() -> None:
    with pytest.raises(ValueError) as caught:
        validate_secret("whsec_not base64!")

    assert str(caught.value).startswith("secret must be 'whsec_' followed by base64")


def test_default_secret_is_valid() -> None:
    assert validate_secret(DEFAULT_SECRET) == DEFAULT_SECRET


def test_config_section_becomes_settings() -> None:
    section = {
        "endpoints": [{"url": "http://127.0.0.1:4011/hooks", "events": ["session.created"]}],
        "max_attempts": 3,
    }

    settings = load_webhook_settings(section, "broxi.yaml")

    assert settings.endpoints[0].events == ["session.created"]
    assert settings.max_attempts == 3
    assert settings.secret == DEFAULT_SECRET


def test_unknown_event_names_field_in_config() -> None:
    section = {"endpoints": [{"url": "http://127.0.0.1:4011/", "events": ["flow.run.paused"]}]}

    with pytest.raises(ConfigError) as caught:
        load_webhook_settings(section, "broxi.yaml")

    assert str(caught.value).startswith(
        "broxi.yaml: webhooks.endpoints.0.events.0: Input should be 'flow.run.started', "
    )
    assert str(caught.value).endswith("(got 'flow.run.paused')")


def test_several_config_problems_listed_per_line() -> None:
    section = {"endpoints": [{"url": "ftp://x"}], "max_attempts": 0, "retries": 3}

    with pytest.raises(ConfigError) as caught:
        load_webhook_settings(section, "broxi.yaml")

    assert str(caught.value).splitlines() == [
        "broxi.yaml: 3 problems in webhooks",
        "broxi.yaml: webhooks.endpoints.0.url: 'ftp://x' must use http or https (got scheme 'ftp')",
        "broxi.yaml: webhooks.max_attempts: Input should be greater than or equal to 1 (got 0)",
        "broxi.yaml: webhooks.retries: Extra inputs are not permitted (got 3)",
    ]


def test_repeated_event_is_rejected() -> None:
    endpoint = {"url": "http://127.0.0.1:4011/", "events": ["session.created"] * 2}

    with pytest.raises(ConfigError) as caught:
        load_webhook_settings({"endpoints": [endpoint]}, "broxi.yaml")

    assert str(caught.value) == (
        "broxi.yaml: webhooks.endpoints.0.events: events lists 'session.created' more than once"
    )


def test_secret_never_appears_in_error() -> None:
    secret = "whsec_" + "x" * 7

    with pytest.raises(ConfigError) as caught:
        load_webhook_settings({"secret": secret}, "broxi.yaml")

    assert str(caught.value).startswith(
        "broxi.yaml: webhooks.secret: secret must encode 24 to 64 bytes"
    )
    assert secret not in str(caught.value)


CONFIG_FILE = """\
session_idle_timeout: 120
webhooks:
  secret: whsec_c2VwYXJhdGUtc2VjcmV0LWZvci1vbmUtZW5kcG9pbnQ=
  max_attempts: 3
  read_timeout_seconds: 2
  endpoints:
    - url: http://127.0.0.1:4011/from-file
      events: [session.created]
"""


def serve_app(monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    """Run `serve` with these arguments, capturing the app instead of starting a server."""
    captured: dict[str, Any] = {}
    monkeypatch.setattr(
        "broxi_mock.cli._run_server", lambda app, sock, *rest: captured.setdefault("app", app)
    )

    result = CliRunner().invoke(main, ["serve", "--port", "0", *args])

    assert result.exit_code == 0, result.output
    return captured["app"]


def test_config_file_and_flags_combine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "broxi-mock.yaml"
    path.write_text(CONFIG_FILE)

    app = serve_app(
        monkeypatch,
        "--config",
        str(path),
        "--webhook",
        "http://127.0.0.1:4011/from-flag",
        "--webhook-max-attempts",
        "9",
    )

    settings = app.state.webhooks.settings
    assert [endpoint.url for endpoint in settings.endpoints] == [
        "http://127.0.0.1:4011/from-file",
        "http://127.0.0.1:4011/from-flag",
    ]
    assert settings.endpoints[0].events == ["session.created"]
    assert settings.secret == "whsec_c2VwYXJhdGUtc2VjcmV0LWZvci1vbmUtZW5kcG9pbnQ="
    assert settings.max_attempts == 9
    assert settings.read_timeout_seconds == 2
    assert app.state.config.session_idle_timeout == 120


def test_config_file_secret_is_never_echoed(tmp_path: Path) -> None:
    path = tmp_path / "broxi-mock.yaml"
    path.write_text("webhooks:\n  secret: whsec_dG9vLXNob3J0\n")

    with pytest.raises(ConfigError) as caught:
        load_serve_file(path)

    assert str(caught.value).startswith(f"{path}: webhooks.secret: secret must")
    assert "whsec_dG9vLXNob3J0" not in str(caught.value)


def test_config_file_unknown_endpoint_field_listed(tmp_path: Path) -> None:
    path = tmp_path / "broxi-mock.yaml"
    path.write_text("webhooks:\n  endpoints:\n    - {url: 'http://127.0.0.1/', event: x}\n")

    with pytest.raises(ConfigError) as caught:
        load_serve_file(path)

    assert str(caught.value) == (
        f"{path}: webhooks.endpoints.0.event: unknown field "
        "(expected one of ['events', 'secret', 'url'])"
    )
