"""The serve config file: sections, one-line errors, and command-line options winning."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from broxi_mock.cli import main
from broxi_mock.errors import ConfigError
from mock_server.chaos import ChaosRule
from mock_server.configfile import load_serve_file, merge_options
from tests.conftest import LiveServer, auth

FULL_FILE = """
seed: 7
rate_limit: 50/min
journal:
  size: 20
logging:
  format: json
  level: warning
  access_log: false
cors:
  allowed_origins: ["https://app.example.com"]
chaos:
  latency: {min_ms: 5, max_ms: 20}
  routes:
    getFlow:
      failure: {rate: 1.0, status: 500}
    POST /flows/{flow_id}/run:
      latency: {min_ms: 100}
"""


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `serve` fail instead of blocking, should a bad setting ever pass its checks."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("serve started a server despite a bad setting")

    monkeypatch.setattr("broxi_mock.cli._run_server", refuse)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broxi-mock.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_file_sets_option_values(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_FILE)

    values = load_serve_file(path).option_values()

    assert values == {
        "seed": 7,
        "rate_limit": "50/min",
        "journal_size": 20,
        "log_format": "json",
        "log_level": "warning",
        "access_log": False,
        "cors_origins": ("https://app.example.com",),
    }


def test_file_chaos_becomes_rules(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_FILE)

    rules = load_serve_file(path).chaos_rules(path)

    assert rules == [
        ChaosRule(f"{path}: chaos", None, latency_ms=(5, 20)),
        ChaosRule(f"{path}: chaos.routes.getFlow", "getFlow", None, 1.0, 500),
        ChaosRule(
            f"{path}: chaos.routes.POST /flows/{{flow_id}}/run",
            "POST /flows/{flow_id}/run",
            latency_ms=(100, 100),
        ),
    ]


def test_empty_file_sets_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "")

    assert load_serve_file(path).option_values() == {}


def test_command_line_wins_over_file() -> None:
    defaults = {"seed": 0, "rate_limit": "tier", "journal_size": 200}

    merged = merge_options(defaults, {"seed": 7, "rate_limit": "5/min"}, explicit={"seed"})

    assert merged == {"seed": 0, "rate_limit": "5/min", "journal_size": 200}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "chaos:\n  failure: {rate: 1.5}\n",
            "chaos.failure.rate: Input should be less than or equal to 1 (got 1.5)",
        ),
        (
            "chaos:\n  latency: {min_ms: 50, max_ms: 10}\n",
            "chaos.latency: max_ms 10 is below min_ms 50",
        ),
        ("rate_limit: fast\n", "rate_limit: 'fast' is not 'tier', 'off' or 'N/min'"),
        ("rate_limit: 0/min\n", "rate_limit: '0/min' must allow at least 1/min"),
        ("journal:\n  size: -1\n", "journal.size: Input should be greater than or equal to 0"),
        (
            "webhookz: {}\n",
            "webhookz: unknown field (expected one of ['chaos', 'cors', "
            "'journal', 'logging', 'rate_limit', 'seed', 'session_idle_timeout', 'webhooks'])",
        ),
        (
            "chaos:\n  routes:\n    runFlow: {delay: 5}\n",
            "chaos.routes.runFlow.delay: unknown field (expected one of ['failure', 'latency'])",
        ),
        ("logging:\n  format: xml\n", "logging.format: Input should be 'text' or 'json'"),
        ("cors:\n  allowed_origins: []\n", "cors.allowed_origins: List should have at least 1"),
        (
            "cors:\n  allowed_origins: ['http://localhost:3000/']\n",
            "cors.allowed_origins: cors origin 'http://localhost:3000/' is invalid",
        ),
        ("- seed\n", "top level is list, expected a mapping"),
        ("seed: [1\n", "line 2, column 1: invalid YAML"),
    ],
    ids=[
        "rate-above-one",
        "latency-reversed",
        "bad-rate-limit",
        "zero-rate-limit",
        "negative-size",
        "unknown-section",
        "unknown-route-field",
        "unknown-format",
        "no-origins",
        "origin-with-slash",
        "not-a-mapping",
        "broken-yaml",
    ],
)
def test_bad_file_names_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_serve_file(path)

    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_serve_file(tmp_path / "absent.yaml")

    assert str(caught.value) == f"{tmp_path / 'absent.yaml'}: file not found"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--latency", "nowhere=5"], "--latency 'nowhere=5': unknown route 'nowhere'"),
        (["--failure-rate", "listFlows=0.5:404"], "status 404 is not documented for listFlows"),
    ],
    ids=["unknown-route", "undocumented-status"],
)
@pytest.mark.usefixtures("no_server")
def test_serve_rejects_bad_chaos(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "0", *args])

    assert result.exit_code == 2
    assert "Usage: " in result.output
    assert message in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("session_idle_timeout: .nan\n", "session_idle_timeout: Input should be a finite number"),
        ("session_idle_timeout: .inf\n", "session_idle_timeout: Input should be a finite number"),
        (
            "webhooks:\n  retry_window_seconds: .inf\n",
            "webhooks.retry_window_seconds: Input should be a finite number",
        ),
        ('rate_limit: "20/min\\n"\n', "rate_limit: '20/min\\n' is not 'tier'"),
    ],
    ids=["idle-nan", "idle-inf", "retry-window-inf", "rate-limit-newline"],
)
def test_file_rejects_non_finite_and_newline(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_serve_file(path)

    assert str(caught.value).startswith(f"{path}: {message}")


@pytest.mark.usefixtures("no_server")
def test_chaos_in_file_stays_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "chaos:\n  failure: {rate: 0.5, status: 418}\n")

    result = CliRunner().invoke(main, ["serve", "--port", "0", "--config", str(path)])

    assert result.exit_code == 1
    assert f"Error: {path}: chaos: status 418 is not documented" in result.output


@pytest.mark.usefixtures("no_server")
def test_serve_rejects_bad_option_value() -> None:
    result = CliRunner().invoke(main, ["serve", "--latency", "soon"])

    assert result.exit_code == 2
    assert "--latency 'soon': expected [ROUTE=]MIN[-MAX]" in result.output


@pytest.mark.usefixtures("no_server")
def test_serve_reports_bad_file(tmp_path: Path) -> None:
    path = write(tmp_path, "chaos:\n  routes:\n    getFlows:\n      failure: {rate: 1}\n")

    result = CliRunner().invoke(main, ["serve", "--port", "0", "--config", str(path)])

    assert result.exit_code == 1
    assert f"Error: {path}: chaos.routes.getFlows: unknown route 'getFlows'" in result.output


@pytest.mark.e2e
def test_serve_applies_config_file(tmp_path: Path, live_server: Callable[..., LiveServer]) -> None:
    path = write(tmp_path, FULL_FILE)

    server = live_server("--config", str(path), "--rate-limit", "40/min", "--seed", "3")
    with httpx.Client(base_url=server.url, headers=auth(), timeout=5) as client:
        flows = client.get("/v1/flows")
        flow = client.get("/v1/flows/flow_abc123")
        foreign = client.options(
            "/v1/flows",
            headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"},
        )
        journal = client.get("/_mock/requests").json()

    assert flows.headers["X-RateLimit-Limit"] == "40"
    assert flow.status_code == 500
    assert foreign.status_code == 403
    assert journal["size"] == 20
    assert 5 <= journal["requests"][-1]["chaos"]["latency_ms"] <= 20
