"""The state file lock: one server per state file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from broxi_mock.cli import main
from broxi_mock.errors import ConfigError
from mock_server.fixtures import load_fixtures
from mock_server.sqlstore import SqliteStore
from tests.conftest import REPO_ROOT


def test_second_store_on_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    fixtures = load_fixtures(REPO_ROOT / "fixtures")
    first = SqliteStore(path, fixtures)

    with pytest.raises(ConfigError) as caught:
        SqliteStore(path, fixtures)

    first.close()
    assert str(caught.value) == f"{path}: in use by another broxi-mock server"


def test_closed_store_releases_its_lock(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    fixtures = load_fixtures(REPO_ROOT / "fixtures")
    SqliteStore(path, fixtures).close()

    again = SqliteStore(path, fixtures)

    sessions = again.count_sessions()
    again.close()
    assert sum(sessions.values()) == len(fixtures.sessions)


def test_serve_on_locked_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    holder = SqliteStore(path, load_fixtures(REPO_ROOT / "fixtures"))

    result = CliRunner().invoke(main, ["serve", "--port", "0", "--state", str(path)])

    holder.close()
    assert result.exit_code == 1
    assert result.output == f"Error: {path}: in use by another broxi-mock server\n"
