"""The load scenarios and the two load generators: wrk, or the Python one when wrk is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WRK_INSTALL_HINT = "install wrk for exact numbers (Debian or Ubuntu: apt-get install wrk)"


@dataclass(frozen=True)
class Scenario:
    """One row of the table: a request sent again and again, and the status it must get."""

    key: str
    label: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    expected_status: int


def scenarios(token: str, flow_id: str) -> list[Scenario]:
    """Return the benchmarked requests: reads, a run, an unauthenticated request, a stream."""
    auth = (("Authorization", f"Bearer {token}"),)
    post = (*auth, ("Content-Type", "application/json"))
    run_body = json.dumps({"input": "Hello, I need help with my order"}).encode()
    flow = f"/v1/flows/{flow_id}"
    return [
        Scenario("list_flows", "GET /v1/flows", "GET", "/v1/flows", auth, b"", 200),
        Scenario("get_flow", "GET /v1/flows/{id}", "GET", flow, auth, b"", 200),
        Scenario("run_flow", "POST /v1/flows/{id}/run", "POST", f"{flow}/run", post, run_body, 200),
        Scenario(
            "unauthorized", "GET /v1/flows without token (401)", "GET", "/v1/flows", (), b"", 401
        ),
        Scenario(
            "stream_flow",
            "POST /v1/flows/{id}/stream",
            "POST",
            f"{flow}/stream",
            post,
            run_body,
            200,
        ),
    ]


def pick_generator(requested: str) -> str:
    """Return 'wrk' or 'python': wrk when it is installed, unless the Python one is requested."""
    if requested == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if requested == "wrk":
        raise RuntimeError(f"wrk is not installed; {WRK_INSTALL_HINT}")
    return "python"


def run_load(
    generator: str, scenario: Scenario, port: int, connections: int, duration: float, work: Path
) -> dict[str, Any]:
    """Load one scenario on one server; return req/s, p50/p99 in ms and unexpected responses."""
    if generator == "wrk":
        result = _run_wrk(scenario, port, connections, duration, work)
    else:
        result = _run_python(scenario, port, connections, duration, work)
    return result


def _run_wrk(
    scenario: Scenario, port: int, connections: int, duration: float, work: Path
) -> dict[str, Any]:
    script = work / f"{scenario.key}.lua"
    script.write_text(_wrk_script(scenario))
    seconds = max(1, round(duration))
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{scenario.path}",
    ]
    output = _run(command, timeout=seconds + 30)
    raw = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    requests = raw["requests"]
    # wrk counts every status of 400 or more as a status error.
    failing = raw["status"] if scenario.expected_status < 400 else requests - raw["status"]
    errors = {name: raw[name] for name in ("connect", "read", "write", "timeout") if raw[name]}
    return {
        "requests": requests,
        "seconds": raw["duration_us"] / 1e6,
        "rps": requests / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "unexpected": failing + sum(errors.values()),
        "errors": errors,
    }


def _wrk_script(scenario: Scenario) -> str:
    lines = [f'wrk.method = "{scenario.method}"']
    if scenario.body:
        lines.append(f"wrk.body = [==[{scenario.body.decode()}]==]")
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in scenario.headers]
    lines.append(
        "done = function(summary, latency, requests)\n"
        "  local e = summary.errors\n"
        '  io.write(string.format(\'{"requests":%d,"duration_us":%d,"connect":%d,'
        '"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%.1f,'
        '"p99_us":%.1f}\\n\', summary.requests, summary.duration, e.connect, e.read, e.write,'
        " e.status, e.timeout, latency:percentile(50), latency:percentile(99)))\n"
        "end"
    )
    return "\n".join(lines) + "\n"


def _run_python(
    scenario: Scenario, port: int, connections: int, duration: float, work: Path
) -> dict[str, Any]:
    body_file = work / f"{scenario.key}.body"
    body_file.write_bytes(scenario.body)
    command = [
        sys.executable,
        "-m",
        "bench.pyload",
        "--port",
        str(port),
        "--method",
        scenario.method,
        "--path",
        scenario.path,
        "--connections",
        str(connections),
        "--duration",
        str(duration),
    ]
    command += [arg for name, value in scenario.headers for arg in ("--header", f"{name}: {value}")]
    if scenario.body:
        command += ["--body-file", str(body_file)]
    result: dict[str, Any] = json.loads(_run(command, timeout=duration + 30).splitlines()[-1])
    expected = result["statuses"].get(str(scenario.expected_status), 0)
    result["unexpected"] = result["requests"] - expected + sum(result["errors"].values())
    return result


def _run(command: list[str], timeout: float) -> str:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({completed.returncode}): {completed.stderr}")
    return completed.stdout
