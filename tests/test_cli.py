"""The command line: lint findings, one-line errors for bad files and flags."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from broxi_mock.cli import main
from tests.conftest import REPO_ROOT, auth, stop_server


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def copy_fixtures(tmp_path: Path) -> Path:
    folder = tmp_path / "fixtures"
    shutil.copytree(REPO_ROOT / "fixtures", folder)
    return folder


def test_lint_passes_on_bundled_spec() -> None:
    code, output = run_cli("lint")

    assert code == 0
    assert output.strip().endswith("OK")


def test_lint_names_broken_example(tmp_path: Path) -> None:
    document = yaml.safe_load((REPO_ROOT / "openapi" / "broxi.yaml").read_text())
    document["components"]["schemas"]["Run"]["examples"][0]["progress"] = 150
    spec = tmp_path / "broken.yaml"
    spec.write_text(yaml.safe_dump(document))

    code, output = run_cli("lint", str(spec))

    assert code == 1
    assert "/components/schemas/Run/examples/0" in output
    assert "150 is greater than the maximum of 100" in output


def test_lint_reports_structural_problem(tmp_path: Path) -> None:
    document = yaml.safe_load((REPO_ROOT / "openapi" / "broxi.yaml").read_text())
    document["paths"]["/flows"]["get"]["parameters"][0]["in"] = "body"
    spec = tmp_path / "broken.yaml"
    spec.write_text(yaml.safe_dump(document))

    code, output = run_cli("lint", str(spec))

    assert code == 1
    assert "/paths/~1flows/get" in output


def test_invalid_yaml_spec_is_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("openapi: 3.1.0\npaths: {\n")

    code, output = run_cli("lint", str(spec))

    assert code == 1
    assert len(output.strip().splitlines()) == 1
    assert "bad.yaml: line" in output
    assert "invalid YAML" in output


@pytest.mark.parametrize(
    ("file", "edit", "expected"),
    [
        (
            "flows.yaml",
            lambda d: d["flows"][1].update(status="archived"),
            "flows.yaml: flows[1] (id='flow_sum456'): status: Input should be 'published' or",
        ),
        (
            "flows.yaml",
            lambda d: d["flows"][0].pop("name"),
            "flows.yaml: flows[0] (id='flow_abc123'): name: Field required",
        ),
        (
            "tokens.yaml",
            lambda d: d["tokens"][3].pop("requests_per_minute"),
            "requests_per_minute is required for the enterprise tier",
        ),
        (
            "sessions.yaml",
            lambda d: d["sessions"][0].update(flow_id="flow_nope"),
            "sessions.yaml: sessions[0] (id='session_def456'): flow_id: unknown flow 'flow_nope'",
        ),
        (
            "flows.yaml",
            lambda d: d["flows"].append(dict(d["flows"][0])),
            "flows.yaml: flows[9]: duplicate id 'flow_abc123'",
        ),
        (
            "usage.yaml",
            lambda d: d["usage"].update(days=0),
            "usage.yaml: usage: days: Input should be greater than or equal to 1",
        ),
    ],
    ids=["enum", "missing", "enterprise-limit", "unknown-flow", "duplicate", "usage-range"],
)
def test_bad_fixture_stops_serve(tmp_path: Path, file: str, edit: object, expected: str) -> None:
    folder = copy_fixtures(tmp_path)
    data = yaml.safe_load((folder / file).read_text())
    edit(data)  # type: ignore[operator]
    (folder / file).write_text(yaml.safe_dump(data))

    code, output = run_cli("serve", "--fixtures", str(folder), "--port", "0")

    assert code == 1
    assert len(output.strip().splitlines()) == 1
    assert expected in output


def test_missing_fixtures_folder_is_one_line(tmp_path: Path) -> None:
    code, output = run_cli("serve", "--fixtures", str(tmp_path / "nowhere"))

    assert code == 1
    assert output.strip() == f"Error: {tmp_path / 'nowhere'}: fixtures folder not found"


def test_bad_rate_limit_flag_is_usage_error() -> None:
    code, output = run_cli("serve", "--rate-limit", "fast")

    assert code == 2
    assert "--rate-limit" in output
    assert "'fast'" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--heartbeat", "nan"], "Invalid value for '--heartbeat': 'nan' is not a finite number."),
        (["--heartbeat", "inf"], "Invalid value for '--heartbeat': 'inf' is not a finite number."),
        (
            ["--session-idle-timeout", "inf"],
            "Invalid value for '--session-idle-timeout': 'inf' is not a finite number.",
        ),
        (
            ["--webhook-retry-window", "nan"],
            "Invalid value for '--webhook-retry-window': 'nan' is not a finite number.",
        ),
        (["--rate-limit", "20/min\n"], "Invalid value for '--rate-limit': '20/min\\n' is not"),
        (["--rate-limit", "\u0663/min"], "Invalid value for '--rate-limit': '\u0663/min' is not"),
        (["--cors-origin", "http://x\n"], "cors origin 'http://x\\n' is invalid"),
    ],
    ids=[
        "heartbeat-nan",
        "heartbeat-inf",
        "idle-inf",
        "retry-nan",
        "newline",
        "arabic-digit",
        "origin-newline",
    ],
)
def test_bad_serve_flag_is_usage_error(args: list[str], message: str) -> None:
    code, output = run_cli("serve", "--port", "0", *args)

    assert code == 2
    assert message in output


def test_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]

        code, output = run_cli("serve", "--port", str(port))

    assert code == 1
    assert output == f"Error: 127.0.0.1:{port}: address already in use; pick another with --port\n"


def test_unknown_host_is_one_line() -> None:
    code, output = run_cli("serve", "--host", "not a host", "--port", "0")

    assert code == 1
    assert len(output.strip().splitlines()) == 1
    assert output.startswith("Error: --host 'not a host': cannot listen on this host")


@pytest.mark.e2e
def test_port_zero_banner_shows_real_port(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "broxi_mock", "serve", "--port", "0"]
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO_ROOT, text=True
        )
    try:
        url = wait_for_banner_url(log, process)

        response = httpx.get(f"{url}/flows", headers=auth())
    finally:
        stop_server(process)

    assert not url.endswith(":0/v1")
    assert response.status_code == 200


def wait_for_banner_url(log: Path, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"URL:\s+(\S+)", log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no URL line in the banner:\n{log.read_text()}")


SERVE_IMPORTS_SCRIPT = """
import sys
from broxi_mock import cli

def report(*args):
    print(sorted(name for name in ("pytest", "schemathesis", "hypothesis") if name in sys.modules))

cli._run_server = report
cli.main(["serve", "--port", "0"])
"""


def test_serve_does_not_import_test_tools() -> None:
    command = [sys.executable, "-c", SERVE_IMPORTS_SCRIPT]

    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_huge_stream_delay_is_usage_error() -> None:
    code, output = run_cli("serve", "--stream-delay-ms", "60001")

    assert code == 2
    assert "--stream-delay-ms" in output
    assert "0<=x<=60000" in output
