"""Schemathesis against a real server keeps the spec and the mock honest with each other."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import PRO_TOKEN, REPO_ROOT, LiveServer


def test_schemathesis_finds_no_failures(live_server: Callable[..., LiveServer]) -> None:
    server = live_server("--stream-delay-ms", "0", "--rate-limit", "1000000/min")
    schemathesis = Path(sys.executable).parent / "schemathesis"
    command = [
        str(schemathesis),
        "--config-file",
        str(REPO_ROOT / "schemathesis.toml"),
        "run",
        f"{server.url}/_mock/openapi.json",
        "--url",
        f"{server.url}/v1",
        "-H",
        f"Authorization: Bearer {PRO_TOKEN}",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--seed",
        "1",
        "--max-examples",
        "25",
        "--no-color",
    ]

    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
