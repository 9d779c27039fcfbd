"""The benchmark harness runs end to end; it measures nothing here, so no ratio is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

QUICK = [
    "--duration", "0.3", "--warmup", "0.1", "--starts", "1", "--streams", "20",
    "--stream-ramp", "0.2", "--stream-delay-ms", "5", "--generator", "python",
    "--settle", "0.1", "--no-contract-kit", "--no-write",
]  # fmt: skip


@pytest.mark.e2e
def test_bench_runs_every_scenario(tmp_path: Path) -> None:
    results_path = tmp_path / "results.json"
    command = [sys.executable, "-m", "bench", *QUICK, "--json", str(results_path)]

    run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=90)

    assert run.returncode == 0, run.stderr
    results = json.loads(results_path.read_text())
    rows = {row["key"]: row for row in results["throughput"]}
    assert sorted(rows) == ["get_flow", "list_flows", "run_flow", "stream_flow", "unauthorized"]
    for row in rows.values():
        for server in ("reference", "mock"):
            assert row[server]["requests"] > 0, (row["key"], server)
            assert row[server]["unexpected"] == 0, (row["key"], server, row[server])
    for server in ("reference", "mock"):
        assert results["streams"][server]["completed"] == 20, results["streams"][server]
    assert "| GET /v1/flows |" in run.stdout
