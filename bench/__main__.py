"""`python -m bench`: run the benchmark, print the tables and record them in the docs."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import click

from bench.load import WRK_INSTALL_HINT, pick_generator
from bench.report import describe_machine, render, write_results
from bench.run import RATE_LIMIT, Settings, run_bench

DEFAULT_OUTPUT = Path("docs/benchmarks.md")
DEFAULTS = Settings()


@click.command(context_settings={"show_default": True})
@click.option(
    "--duration",
    type=click.FloatRange(min=0.1),
    default=DEFAULTS.duration,
    help="Seconds of measured load per request and server.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(min=0.1),
    default=DEFAULTS.warmup,
    help="Seconds of unmeasured load before each measured run.",
)
@click.option(
    "--connections",
    type=click.IntRange(min=1),
    default=DEFAULTS.connections,
    help="Open connections of the load generator.",
)
@click.option(
    "--starts",
    type=click.IntRange(min=1),
    default=DEFAULTS.starts,
    help="Server starts whose median start-up time is reported.",
)
@click.option(
    "--streams",
    type=click.IntRange(min=1),
    default=DEFAULTS.streams,
    help="Paced streams open at once in the streams test.",
)
@click.option(
    "--stream-ramp",
    type=click.FloatRange(min=0),
    default=DEFAULTS.stream_ramp,
    help="Seconds over which the streams are opened.",
)
@click.option(
    "--stream-delay-ms",
    type=click.IntRange(min=0),
    default=DEFAULTS.stream_delay_ms,
    help="Delay before and between stream tokens in the streams test, in ms.",
)
@click.option(
    "--generator",
    type=click.Choice(["auto", "wrk", "python"]),
    default="auto",
    help="Load generator: wrk when installed ('auto'), or the Python one.",
)
@click.option(
    "--contract-kit/--no-contract-kit",
    default=True,
    help="Time a default `broxi-mock test` run against the mock.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OUTPUT,
    help="Markdown file whose results block is replaced.",
)
@click.option("--write/--no-write", default=True, help="Record the results in --output.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the raw results to this JSON file.",
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=DEFAULTS.settle,
    help="Seconds a server rests before its idle memory is read.",
)
def main(
    duration: float,
    warmup: float,
    connections: int,
    starts: int,
    streams: int,
    stream_ramp: float,
    stream_delay_ms: int,
    generator: str,
    contract_kit: bool,
    output: Path,
    write: bool,
    json_path: Path | None,
    settle: float,
) -> None:
    """Benchmark the mock against a bare Starlette app on the same uvicorn stack."""
    try:
        chosen = pick_generator(generator)
    except RuntimeError as exc:
        raise click.UsageError(str(exc)) from exc
    if chosen != "wrk":
        click.echo(f"NOTE: using the Python load generator; {WRK_INSTALL_HINT}.", err=True)
    settings = Settings(
        generator=chosen,
        connections=connections,
        duration=duration,
        warmup=warmup,
        starts=starts,
        streams=streams,
        stream_ramp=stream_ramp,
        stream_delay_ms=stream_delay_ms,
        contract_kit=contract_kit,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="broxi-bench-") as work:
        try:
            results = run_bench(settings, Path(work))
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from exc
    header = describe_machine(chosen)
    header.append(f"- Command: `{_command_line()}` ({time.monotonic() - started:.0f} s)")
    header.append(_settings_line(settings))
    block = render(results, header)
    click.echo(block)
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2))
    if write:
        write_results(output, block)
        click.echo(f"Recorded in {output}.", err=True)


def _command_line() -> str:
    arguments = " ".join(sys.argv[1:])
    return f"python -m bench {arguments}".strip() if arguments else "make bench"


def _settings_line(settings: Settings) -> str:
    return (
        f"- Load: {settings.connections} connections, {settings.duration:g} s per request and "
        f"server after {settings.warmup:g} s of warm-up; the mock serves with "
        f"`--rate-limit {RATE_LIMIT}`; streams: {settings.streams:,} opened over "
        f"{settings.stream_ramp:g} s, {settings.stream_delay_ms} ms between tokens"
    )


if __name__ == "__main__":
    main()
