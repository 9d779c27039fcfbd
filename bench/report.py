"""Turn benchmark results into the Markdown tables of `docs/benchmarks.md`."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"
RATIO_TARGETS = {"list_flows": 0.6, "run_flow": 0.5}
P99_TARGET_MS = 10.0
IDLE_TARGET_MB = 60.0
# "Flat under load": the second pass of sustained load may add at most this much.
FLAT_TARGET_MB = 5.0
STARTUP_TARGET_S = 1.0
STREAM_EXTRA_TARGET_MB = 150.0
FIRST_EVENT_TARGET_MS = 50.0
CONTRACT_TARGET_S = 60.0


def verdict(met: bool) -> str:
    """Return the table cell for a target."""
    return "met" if met else "**missed**"


def describe_machine(generator: str) -> list[str]:
    """List the facts a reader needs to compare this run with another."""
    cpu = _cpu_model()
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    stack = ", ".join(
        f"{name} {version(name)}" for name in ("uvicorn", "starlette", "uvloop", "httptools")
    )
    return [
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {cpu}, {os.cpu_count()} cores, {memory_gb:.1f} GB memory, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; {stack}",
        f"- Load generator: {_generator_name(generator)}",
        f"- Commit: {_commit()}",
    ]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown processor"


def _generator_name(generator: str) -> str:
    if generator != "wrk":
        return "the Python generator in bench/pyload.py (wrk was not found, so ratios are low)"
    wrk = shutil.which("wrk") or "wrk"
    output = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10)
    first_line = (output.stdout or output.stderr).splitlines()[0]
    return f"{first_line.split(' Copyright')[0]}, one thread"


def _commit() -> str:
    def git(*args: str) -> str:
        run = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
        return run.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" with uncommitted changes" if git("status", "--porcelain") else "")


def render(results: dict[str, Any], header: list[str]) -> str:
    """Render the whole results block."""
    parts = [
        *header,
        "",
        *_throughput_table(results["throughput"]),
        "",
        *_memory_table(results),
        "",
        *_streams_table(results["streams"]),
        "",
        _contract_line(results["contract_kit"]),
    ]
    return "\n".join(parts) + "\n"


def _throughput_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| Request | Reference req/s | Mock req/s | Ratio | Ratio target | Reference p50 / p99 ms "
        "| Mock p50 / p99 ms | p99 target | CPU us per request, reference / mock "
        "| Unexpected answers |",
        "|---|---:|---:|---:|---|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        ref, mock = row["reference"], row["mock"]
        target = RATIO_TARGETS.get(row["key"])
        ratio_cell = f">= {target}: {verdict(row['ratio'] >= target)}" if target else "-"
        p99_cell = "-"
        if row["key"] != "stream_flow":
            p99_cell = f"<= {P99_TARGET_MS:g} ms: {verdict(mock['p99_ms'] <= P99_TARGET_MS)}"
        lines.append(
            f"| {row['label']} | {ref['rps']:,.0f} | {mock['rps']:,.0f} | {row['ratio']:.2f} "
            f"| {ratio_cell} | {ref['p50_ms']:.1f} / {ref['p99_ms']:.1f} "
            f"| {mock['p50_ms']:.1f} / {mock['p99_ms']:.1f} | {p99_cell} "
            f"| {ref['cpu_us']:.0f} / {mock['cpu_us']:.0f} "
            f"| {ref['unexpected'] + mock['unexpected']} |"
        )
    return lines


def _memory_table(results: dict[str, Any]) -> list[str]:
    memory, startup = results["memory"], results["startup"]
    sustained = memory["sustained"]
    growth = sustained["after"] - sustained["before"]
    mock_start, mock_starts = startup["mock"]
    ref_start, _ = startup["reference"]
    startup_met = verdict(mock_start <= STARTUP_TARGET_S)
    return [
        "| Measure | Mock | Reference | Target |",
        "|---|---:|---:|---|",
        f"| Resident memory when idle | {memory['mock_idle']:.1f} MB "
        f"| {memory['reference_idle']:.1f} MB "
        f"| <= {IDLE_TARGET_MB:g} MB: {verdict(memory['mock_idle'] <= IDLE_TARGET_MB)} |",
        f"| Resident memory after all load | {memory['mock_after_load']:.1f} MB "
        f"| {memory['reference_after_load']:.1f} MB | - |",
        f"| Growth over a second pass of {sustained['requests']:,} requests | {growth:+.1f} MB | - "
        f"| <= {FLAT_TARGET_MB:g} MB: {verdict(growth <= FLAT_TARGET_MB)} |",
        f"| Start-up to first 200 (median of {len(mock_starts)}) | {mock_start:.2f} s "
        f"| {ref_start:.2f} s | <= {STARTUP_TARGET_S:g} s: {startup_met} |",
    ]


def _streams_table(streams: dict[str, Any]) -> list[str]:
    ref, mock = streams["reference"], streams["mock"]
    ttfe_met = mock["first_event_p99_ms"] <= FIRST_EVENT_TARGET_MS
    extra_met = mock["extra_mb"] <= STREAM_EXTRA_TARGET_MB
    errors_met = not mock["errors"] and mock["completed"] == mock["streams"]
    return [
        f"| {mock['streams']:,} paced streams | Mock | Reference | Target |",
        "|---|---:|---:|---|",
        f"| Completed / most open at once | {mock['completed']:,} / {mock['most_open']:,} "
        f"| {ref['completed']:,} / {ref['most_open']:,} | all |",
        f"| Errors | {_errors(mock['errors'])} | {_errors(ref['errors'])} "
        f"| none: {verdict(errors_met)} |",
        f"| First event p50 / p99 | {mock['first_event_p50_ms']:.1f} / "
        f"{mock['first_event_p99_ms']:.1f} ms | {ref['first_event_p50_ms']:.1f} / "
        f"{ref['first_event_p99_ms']:.1f} ms "
        f"| p99 <= {FIRST_EVENT_TARGET_MS:g} ms: {verdict(ttfe_met)} |",
        f"| Memory at peak (extra over idle) | {mock['peak_mb']:.1f} MB "
        f"(+{mock['extra_mb']:.1f}) | {ref['peak_mb']:.1f} MB (+{ref['extra_mb']:.1f}) "
        f"| extra <= {STREAM_EXTRA_TARGET_MB:g} MB: {verdict(extra_met)} |",
    ]


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in errors.items()) or "none"


def _contract_line(contract: dict[str, Any]) -> str:
    if "skipped" in contract:
        return f"Contract kit: skipped, because {contract['skipped']}."
    if "timed_out" in contract:
        return (
            f"Contract kit: a default `broxi-mock test` run against the mock did not finish "
            f"within {contract['timed_out']:g} s (target <= {CONTRACT_TARGET_S:g} s: "
            f"{verdict(False)})."
        )
    met = contract["exit_code"] == 0 and contract["seconds"] <= CONTRACT_TARGET_S
    return (
        f"Contract kit: a default `broxi-mock test` run against the mock took "
        f"{contract['seconds']:.1f} s and exited with {contract['exit_code']} "
        f"(target <= {CONTRACT_TARGET_S:g} s, passing: {verdict(met)})."
    )


def write_results(path: Path, block: str) -> None:
    """Replace the results block of `path`, or append one when it has none."""
    text = path.read_text() if path.exists() else ""
    wrapped = f"{BEGIN}\n{block}{END}"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + wrapped + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + wrapped + "\n"
    path.write_text(text)
