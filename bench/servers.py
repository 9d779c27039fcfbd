"""Start the servers under test on free ports, time their start-up and read their memory."""

from __future__ import annotations

import http.client
import socket
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MB = 1_000_000


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Probe:
    """The request whose 200 response shows that a server is ready."""

    path: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Server:
    """A server process under test, with the seconds it took to return its first 200."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    startup_seconds: float

    def rss_mb(self) -> float:
        """Return the process's resident memory in MB (10**6 bytes)."""
        rss: int = psutil.Process(self.process.pid).memory_info().rss
        return rss / MB

    def cpu_seconds(self) -> float:
        """Return the processor time the process has used so far, user and system."""
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        """Stop the process, killing it if it does not stop within 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(
    name: str, command: list[str], port: int, probe: Probe, log_dir: Path, timeout: float = 20.0
) -> Server:
    """Start `command` and wait at most `timeout` seconds for a 200 response to `probe`."""
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = Server(name, process, port, log_path, 0.0)
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log_path.read_text()}")
        if _answers_200(port, probe):
            server.startup_seconds = time.perf_counter() - started
            return server
        time.sleep(0.005)
    server.stop()
    raise RuntimeError(
        f"{name} returned no 200 response within {timeout} s:\n{log_path.read_text()}"
    )


def _answers_200(port: int, probe: Probe) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", probe.path, headers=probe.headers)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def median_startup(
    name: str, command: list[str], probe: Probe, log_dir: Path, starts: int
) -> tuple[float, list[float]]:
    """Start and stop a server `starts` times; return the median and every start-up time."""
    times = []
    for _ in range(starts):
        port = free_port()
        server = start_server(name, [*command, "--port", str(port)], port, probe, log_dir)
        server.stop()
        times.append(server.startup_seconds)
    return statistics.median(times), times


class PeakSampler:
    """Samples a process's resident memory in a thread and keeps the highest value."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss / MB
            except psutil.Error:
                return
            self.peak_mb = max(self.peak_mb, rss)
            self._stop.wait(self.interval)
