"""Run the whole benchmark: start-up, throughput, memory, paced streams, contract-kit time."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.capture import capture_bodies
from bench.load import Scenario, run_load, scenarios
from bench.servers import PeakSampler, Probe, Server, free_port, median_startup, start_server

TOKEN = "bx_test_pro_00000000000000000002"
FLOW_ID = "flow_abc123"
# Every request is counted by the rate limiter, but the limit is too high for any 429 response.
RATE_LIMIT = "1000000000/min"
OPEN_FILES = 8192


@dataclass(frozen=True)
class Settings:
    """How long and how hard to load; `make bench` uses the defaults."""

    generator: str = "wrk"
    connections: int = 50
    duration: float = 5.0
    warmup: float = 1.0
    starts: int = 3
    streams: int = 1000
    stream_ramp: float = 2.0
    stream_delay_ms: int = 200
    contract_kit: bool = True
    contract_timeout: float = 180.0
    settle: float = 1.0


def mock_command(stream_delay_ms: int) -> list[str]:
    """Return the command that serves the mock as a user would, rate limiting on."""
    return [
        sys.executable,
        "-m",
        "broxi_mock",
        "serve",
        "--rate-limit",
        RATE_LIMIT,
        "--stream-delay-ms",
        str(stream_delay_ms),
    ]


def reference_command(bodies: Path, delay: float) -> list[str]:
    """Return the command that serves the reference app with the captured bodies."""
    return [
        sys.executable,
        "-m",
        "bench.reference",
        "--bodies",
        str(bodies),
        "--first-delay",
        str(delay),
        "--every-delay",
        str(delay),
    ]


def run_bench(settings: Settings, work: Path) -> dict[str, Any]:
    """Run every measurement and return the results."""
    _raise_open_files_limit()
    probe = Probe("/v1/flows", {"Authorization": f"Bearer {TOKEN}"})
    cases = scenarios(TOKEN, FLOW_ID)
    results: dict[str, Any] = {}
    mock_startup = median_startup("mock", mock_command(0), probe, work, settings.starts)
    bodies = work / "bodies.json"
    results["throughput"], results["memory"], ref_startup = _measure_throughput(
        settings, cases, probe, bodies, work
    )
    results["startup"] = {"mock": mock_startup, "reference": ref_startup}
    results["streams"] = _measure_streams(settings, cases[-1], probe, bodies, work)
    results["contract_kit"] = _measure_contract_kit(settings, probe, work)
    return results


def _raise_open_files_limit() -> None:
    # A thousand streams need a thousand sockets on each side; servers inherit this limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES if hard == resource.RLIM_INFINITY else min(OPEN_FILES, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _start(name: str, command: list[str], probe: Probe, work: Path) -> Server:
    port = free_port()
    return start_server(name, [*command, "--port", str(port)], port, probe, work)


def _measure_throughput(
    settings: Settings, cases: list[Scenario], probe: Probe, bodies: Path, work: Path
) -> tuple[list[dict[str, Any]], dict[str, Any], tuple[float, list[float]]]:
    servers: list[Server] = []
    try:
        # Idle means started, with only the start-up probe served.
        mock = _start("mock", mock_command(0), probe, work)
        servers.append(mock)
        time.sleep(settings.settle)
        memory: dict[str, Any] = {"mock_idle": mock.rss_mb()}
        bodies.write_text(json.dumps(capture_bodies(mock.port, cases)))
        ref_startup = median_startup(
            "reference", reference_command(bodies, 0.0), probe, work, settings.starts
        )
        reference = _start("reference", reference_command(bodies, 0.0), probe, work)
        servers.append(reference)
        time.sleep(settings.settle)
        memory["reference_idle"] = reference.rss_mb()
        rows = [_compare(settings, case, reference, mock, work) for case in cases]
        memory["sustained"] = _sustain(settings, cases, mock, work)
        time.sleep(settings.settle)
        memory["mock_after_load"] = mock.rss_mb()
        memory["reference_after_load"] = reference.rss_mb()
        return rows, memory, ref_startup
    finally:
        for server in servers:
            server.stop()


def _compare(
    settings: Settings, case: Scenario, reference: Server, mock: Server, work: Path
) -> dict[str, Any]:
    # Short rounds alternate between the servers, so each mock run has a reference run
    # on the same machine state. Medians keep a noisy neighbour's burst out of the result.
    rounds = max(1, round(settings.duration))
    for server in (reference, mock):
        run_load(settings.generator, case, server.port, settings.connections, settings.warmup, work)
    runs: dict[str, list[dict[str, Any]]] = {"reference": [], "mock": []}
    for _ in range(rounds):
        for server in (reference, mock):
            result = _timed_load(settings, case, server, settings.duration / rounds, work)
            runs[server.name].append(result)
    pairs = zip(runs["reference"], runs["mock"], strict=True)
    ratios = [mine["rps"] / theirs["rps"] for theirs, mine in pairs if theirs["rps"]]
    row: dict[str, Any] = {
        "key": case.key,
        "label": case.label,
        "reference": _combine(runs["reference"]),
        "mock": _combine(runs["mock"]),
        "ratio": statistics.median(ratios) if ratios else 0.0,
        "mock_rss_after": mock.rss_mb(),
    }
    print(
        f"  {case.label}: reference {row['reference']['rps']:.0f}/s, "
        f"mock {row['mock']['rps']:.0f}/s",
        file=sys.stderr,
    )
    return row


def _timed_load(
    settings: Settings, case: Scenario, server: Server, seconds: float, work: Path
) -> dict[str, Any]:
    cpu_before = server.cpu_seconds()
    result = run_load(settings.generator, case, server.port, settings.connections, seconds, work)
    cpu = server.cpu_seconds() - cpu_before
    result["cpu_us"] = cpu / result["requests"] * 1e6 if result["requests"] else 0.0
    return result


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float:
        return float(statistics.median(run[key] for run in runs))

    return {
        "rounds": len(runs),
        "requests": sum(run["requests"] for run in runs),
        "rps": median("rps"),
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "cpu_us": median("cpu_us"),
        "unexpected": sum(run["unexpected"] for run in runs),
    }


def _sustain(settings: Settings, cases: list[Scenario], mock: Server, work: Path) -> dict[str, Any]:
    # A second pass of the writing and reading load: a bounded store stops growing by now.
    before = mock.rss_mb()
    requests = 0
    for case in cases:
        if case.key in ("list_flows", "run_flow"):
            result = run_load(
                settings.generator, case, mock.port, settings.connections, settings.duration, work
            )
            requests += result["requests"]
    return {"before": before, "after": mock.rss_mb(), "requests": requests}


def _measure_streams(
    settings: Settings, case: Scenario, probe: Probe, bodies: Path, work: Path
) -> dict[str, Any]:
    delay = settings.stream_delay_ms / 1000
    commands = {
        "reference": reference_command(bodies, delay),
        "mock": mock_command(settings.stream_delay_ms),
    }
    results = {}
    for name, command in commands.items():
        server = _start(name, command, probe, work)
        try:
            time.sleep(settings.settle)
            idle = server.rss_mb()
            with PeakSampler(server.process.pid) as sampler:
                outcome = _run_stream_client(settings, case, server.port, work)
            outcome.update(idle_mb=idle, peak_mb=sampler.peak_mb, extra_mb=sampler.peak_mb - idle)
            results[name] = outcome
        finally:
            server.stop()
    return results


def _run_stream_client(settings: Settings, case: Scenario, port: int, work: Path) -> dict[str, Any]:
    body_file = work / "stream.body"
    body_file.write_bytes(case.body)
    timeout = settings.stream_ramp + 60
    command = [
        sys.executable,
        "-m",
        "bench.streams",
        "--port",
        str(port),
        "--path",
        case.path,
        "--body-file",
        str(body_file),
        "--count",
        str(settings.streams),
        "--ramp",
        str(settings.stream_ramp),
        "--timeout",
        str(timeout),
    ]
    command += [arg for name, value in case.headers for arg in ("--header", f"{name}: {value}")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 30)
    if completed.returncode != 0:
        raise RuntimeError(f"stream client failed: {completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    return result


def _measure_contract_kit(settings: Settings, probe: Probe, work: Path) -> dict[str, Any]:
    if not settings.contract_kit:
        return {"skipped": "it was turned off with --no-contract-kit"}
    help_run = subprocess.run(
        [sys.executable, "-m", "broxi_mock", "test", "--help"], capture_output=True, timeout=60
    )
    if help_run.returncode != 0:
        return {"skipped": "this build has no `broxi-mock test` command"}
    server = _start("mock-contract", mock_command(0), probe, work)
    try:
        command = [
            sys.executable,
            "-m",
            "broxi_mock",
            "test",
            "--base-url",
            f"http://127.0.0.1:{server.port}",
            "--token",
            TOKEN,
        ]
        started = time.perf_counter()
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, timeout=settings.contract_timeout
            )
        except subprocess.TimeoutExpired:
            return {"timed_out": settings.contract_timeout}
        seconds = time.perf_counter() - started
    finally:
        server.stop()
    tail = (completed.stdout + completed.stderr).strip().splitlines()[-3:]
    return {"seconds": seconds, "exit_code": completed.returncode, "tail": tail}
