"""Fixture loading: every bad value stops the server with one line naming file and field."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from broxi_mock.cli import _announce, main
from mock_server import MockConfig, create_app
from tests.conftest import REPO_ROOT

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `serve` fail instead of blocking, should a bad file ever pass its checks."""

    def reject_start(*args: object) -> None:
        raise AssertionError("serve started a server despite a bad file")

    monkeypatch.setattr("broxi_mock.cli._run_server", reject_start)


def edited_fixtures(tmp_path: Path, file: str, edit: Edit) -> Path:
    folder = tmp_path / "fixtures"
    shutil.copytree(REPO_ROOT / "fixtures", folder)
    data = yaml.safe_load((folder / file).read_text())
    edit(data)
    (folder / file).write_text(yaml.safe_dump(data))
    return folder


def serve_with(folder: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["serve", "--fixtures", str(folder), "--port", "0"])
    return result.exit_code, result.output


def set_usage(key: str, value: Any) -> Edit:
    return lambda data: data["usage"].__setitem__(key, value)


def set_runs_per_day(value: Any) -> Edit:
    return lambda data: data["usage"]["runs_per_day"].__setitem__("flow_abc123", value)


@pytest.mark.parametrize(
    ("file", "edit", "expected"),
    [
        (
            "flows.yaml",
            lambda d: d["flows"][0].update(created_at="2024-01-10"),
            "flows[0] (id='flow_abc123'): created_at: Input should have timezone info",
        ),
        (
            "flows.yaml",
            lambda d: d["flows"][0].update(updated_at="2024-01-10T09:00:00"),
            "flows[0] (id='flow_abc123'): updated_at: Input should have timezone info",
        ),
        (
            "sessions.yaml",
            lambda d: d["sessions"][0].update(created_at="2024-01-10T09:00:00"),
            "sessions[0] (id='session_def456'): created_at: Input should have timezone info",
        ),
        (
            "sessions.yaml",
            lambda d: d["sessions"][0]["messages"][0].update(timestamp="2024-01-10T09:00:00"),
            "sessions[0] (id='session_def456'): messages.0.timestamp: Input should have timezone",
        ),
    ],
    ids=["flow-date", "flow-naive-time", "session", "message"],
)
def test_time_without_offset_is_rejected(
    tmp_path: Path, file: str, edit: Edit, expected: str
) -> None:
    folder = edited_fixtures(tmp_path, file, edit)

    code, output = serve_with(folder)

    assert code == 1
    assert len(output.strip().splitlines()) == 1
    assert f"{file}: {expected}" in output


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (set_runs_per_day([70, 30]), "runs_per_day.flow_abc123: range [70, 30] has min above max"),
        (set_runs_per_day([-5, 30]), "runs_per_day.flow_abc123: range [-5, 30] must not be neg"),
        (set_usage("tokens_per_run", [900, 60]), "tokens_per_run: range [900, 60] has min above"),
        (set_usage("tokens_per_run", [-60, 900]), "tokens_per_run: range [-60, 900] must not be"),
        (
            set_usage("duration_seconds", [float("nan"), float("inf")]),
            "duration_seconds.0: Input should be a finite number, got nan",
        ),
        (
            set_usage("duration_seconds", [0.5, float("inf")]),
            "duration_seconds.1: Input should be a finite number, got inf",
        ),
    ],
    ids=["reversed-runs", "negative-runs", "reversed-tokens", "negative-tokens", "nan", "inf"],
)
def test_bad_usage_range_is_rejected(tmp_path: Path, edit: Edit, expected: str) -> None:
    folder = edited_fixtures(tmp_path, "usage.yaml", edit)

    code, output = serve_with(folder)

    assert code == 1
    assert len(output.strip().splitlines()) == 1
    assert f"usage.yaml: usage: {expected}" in output


def test_infinite_flow_price_is_rejected(tmp_path: Path) -> None:
    edit: Edit = lambda d: d["flows"][0].update(price_per_1k_tokens=float("inf"))  # noqa: E731
    folder = edited_fixtures(tmp_path, "flows.yaml", edit)

    code, output = serve_with(folder)

    assert code == 1
    assert "flows[0] (id='flow_abc123'): price_per_1k_tokens: Input should be a finite" in output


def test_no_tokens_stops_serve(tmp_path: Path) -> None:
    folder = edited_fixtures(tmp_path, "tokens.yaml", lambda d: d.update(tokens=[]))

    code, output = serve_with(folder)

    assert code == 1
    assert output.strip() == (
        f"Error: {folder / 'tokens.yaml'}: tokens: no token listed (expected at least one, "
        "because every API request needs a token)"
    )


def test_banner_without_pro_token_shows_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    free_only: Edit = lambda d: [token.update(tier="free") for token in d["tokens"]]  # noqa: E731
    folder = edited_fixtures(tmp_path, "tokens.yaml", free_only)
    config = MockConfig(fixtures_dir=folder)
    app = create_app(config)

    _announce(app, config, {"log_format": "text"})

    banner = capsys.readouterr().out
    assert "token:    YOUR_API_TOKEN (free tier)" in banner
