"""`broxi-mock test` and `pytest contract_tests`: usage errors, exit codes and the pytest entry."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from broxi_mock.cli import main
from tests.broken_mock import VARIANTS, build_variant, serve_in_thread
from tests.conftest import PRO_TOKEN, REPO_ROOT, free_port


def run_test_command(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["test", *args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    with serve_in_thread(build_variant(None)) as url:
        yield url


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base-url", "ftp://example.test", "--token", "t"], "must be an http(s) URL"),
        (["--base-url", "http://127.0.0.1:1", "--token", "two words"], "one non-empty word"),
        (["--base-url", "http://127.0.0.1:1", "--token", "t", "--checks", "nope"], "unknown check"),
        (["--base-url", "http://127.0.0.1:1", "--token", "t", "--phases", "warp"], "phases"),
        (
            ["--base-url", "http://127.0.0.1:1", "--token", "t", "--operation", "nope"],
            "no operationId",
        ),
        (["--base-url", "http://127.0.0.1:1", "--token", "t", "--webhook-secret", "x"], "secret"),
        (["--token", "t"], "Missing option '--base-url'"),
    ],
    ids=["scheme", "token", "check", "phase", "operation", "webhook secret", "no base url"],
)
def test_bad_option_is_usage_error(args: list[str], message: str) -> None:
    code, output = run_test_command(*args)

    assert code == 2
    assert message in output


def test_unreadable_spec_is_usage_error(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("openapi: [unclosed")

    code, output = run_test_command(
        "--base-url", "http://127.0.0.1:1", "--token", "t", "--spec", str(spec)
    )

    assert code == 2
    assert "broken.yaml" in output


def test_unreachable_server_is_usage_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    code, output = run_test_command("--base-url", url, "--token", PRO_TOKEN)

    assert code == 2
    assert "cannot reach" in output


def test_rejected_token_is_usage_error(mock_url: str) -> None:
    code, output = run_test_command("--base-url", mock_url, "--token", "bx_unknown_token_value")

    assert code == 2
    assert "rejected the token with 401" in output


def test_base_url_with_base_path_is_kept(mock_url: str) -> None:
    code, output = run_test_command(
        "--base-url", f"{mock_url}/v1", "--token", PRO_TOKEN, "--operation", "getUsage",
        "--max-examples", "2", "--phases", "examples",
    )  # fmt: skip

    assert code == 0, output[-3000:]
    assert f"{mock_url}/v1/v1" not in output


def run_pytest_entry(url: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "pytest", str(REPO_ROOT / "contract_tests"), "--base-url", url,
        "--token", PRO_TOKEN, "--max-examples", "2", "-q", "-p", "no:cacheprovider",
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


@pytest.mark.e2e
def test_pytest_entry_passes_against_mock(mock_url: str) -> None:
    result = run_pytest_entry(mock_url)

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "passed" in result.stdout


@pytest.mark.e2e
def test_pytest_entry_catches_broken_stream() -> None:
    variant = next(v for v in VARIANTS if v.name == "stream that never sends end")

    with serve_in_thread(build_variant(variant)) as url:
        result = run_pytest_entry(url)

    assert result.returncode == 1, result.stdout[-4000:]
    assert "Stream never sends end or error" in result.stdout
