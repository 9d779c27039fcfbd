"""The contract kit end to end: green against the mock, and each broken variant caught."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from broxi_mock.cli import main
from tests.broken_mock import VARIANTS, SwitchableApp, Variant, build_variant, serve_in_thread
from tests.conftest import PRO_TOKEN, LiveServer

SUMMARY_LINE = re.compile(r"^\s+(\w+)\s+(\d+)\s+(FAILED|ok)$", re.MULTILINE)


def run_kit(url: str, *args: str) -> tuple[int, str]:
    arguments = ["test", "--base-url", url, "--token", PRO_TOKEN, "--seed", "1", *args]
    result = CliRunner().invoke(main, arguments)
    return result.exit_code, result.output


def failed_checks(output: str) -> set[str]:
    return {name for name, _, mark in SUMMARY_LINE.findall(output) if mark == "FAILED"}


@pytest.fixture(scope="module")
def variant_server() -> Iterator[tuple[SwitchableApp, str]]:
    app = SwitchableApp()
    with serve_in_thread(app) as url:
        yield app, url


@pytest.mark.e2e
def test_kit_passes_against_mock(live_server: Callable[..., LiveServer], tmp_path: Path) -> None:
    server = live_server("--stream-delay-ms", "0", "--rate-limit", "1000000/min")
    report = tmp_path / "junit.xml"
    command = [
        sys.executable, "-m", "broxi_mock", "test", "--base-url", server.url, "--token", PRO_TOKEN,
        "--seed", "1", "--max-examples", "3", "--report", str(report),
    ]  # fmt: skip

    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert failed_checks(output) == set()
    assert "no contract breaks found" in output
    suites = ElementTree.parse(report).getroot()
    assert suites.tag == "testsuites"
    assert suites.get("failures") == "0"
    assert len(suites.findall("./testsuite/testcase")) >= 8


@pytest.mark.parametrize("variant", VARIANTS, ids=[variant.name for variant in VARIANTS])
def test_broken_variant_is_caught(
    variant: Variant, variant_server: tuple[SwitchableApp, str]
) -> None:
    app, url = variant_server
    app.target = build_variant(variant)
    operations = [arg for operation in variant.operations for arg in ("--operation", operation)]

    code, output = run_kit(
        url, "--max-examples", "3", "--phases", ",".join(variant.phases), *operations
    )

    assert code == 1, output[-4000:]
    assert variant.check in failed_checks(output), output[-4000:]
