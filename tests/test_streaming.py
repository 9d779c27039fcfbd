"""Event streams: framing, pacing, heartbeats, failures, disconnects and resuming a run."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mock_server.runs import RunPlan
from tests.conftest import LiveServer, auth, start_server, stop_server
from tests.helpers import abort_stream, fixtures_with_flows, flow_fixture, parse_stream

# Blank lines, a line that looks like an SSE field, CRLF, a lone CR, emoji and the line
# separators that str.splitlines() breaks at: none of it may break the framing.
ODD_REPLY = (
    "First line\r\nsecond line\n\ndata: not an event\nid: 99\n: not a comment\r"
    "event: error\n\n\nEmoji 🎉👩‍💻 and U+2028 [\u2028] NEL [\u0085] end\n"
)
ODD_FLOW = flow_fixture(
    "flow_odd", replies=[ODD_REPLY], latency={"first_token_ms": 0, "token_ms": 0}
)
SLOW_FLOW = flow_fixture("flow_slow", latency={"first_token_ms": 3000, "token_ms": 100})
PACED_FLOW = flow_fixture(
    "flow_paced",
    latency={"first_token_ms": 0, "token_ms": 100},
    replies=["One two three four five six seven eight nine ten eleven twelve."],
)
STREAM_HEADERS = {**auth(), "Accept": "text/event-stream"}
BODY = {"input": "Where is my order?"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server with slow and paced test flows and a heartbeat every 50 ms."""
    folder = tmp_path_factory.mktemp("streaming")
    fixtures = fixtures_with_flows(folder / "fixtures", ODD_FLOW, SLOW_FLOW, PACED_FLOW)
    live = start_server(folder, "--fixtures", str(fixtures), "--heartbeat", "0.05")
    yield live
    stop_server(live.process)


def read_lines(lines: Iterator[str], until: Callable[[list[str]], bool]) -> list[str]:
    """Read stream lines until `until` holds for the lines so far, or the stream ends.

    `lines` must stay referenced by the caller: httpx closes the connection as soon as a
    dropped `iter_lines()` generator is collected.
    """
    seen: list[str] = []
    for line in lines:
        seen.append(line)
        if until(seen):
            break
    return seen


def data_lines(lines: list[str]) -> list[dict[str, object]]:
    return [json.loads(line[6:]) for line in lines if line.startswith("data: ")]


def wait_for_status(server: LiveServer, run_id: str, status: str) -> dict[str, object]:
    """Poll a run until it has `status`, at most 100 times 20 ms apart."""
    run: dict[str, object] = {}
    for _ in range(100):
        run = httpx.get(f"{server.url}/v1/runs/{run_id}", headers=auth()).json()
        if run["status"] == status:
            break
        time.sleep(0.02)
    return run


def wait_for_no_streams(server: LiveServer) -> int:
    """Poll the open stream count until it is 0, at most 100 times 20 ms apart."""
    count = -1
    for _ in range(100):
        count = httpx.get(f"{server.url}/_mock/state").json()["streams_in_flight"]
        if count == 0:
            break
        time.sleep(0.02)
    return count


def test_stream_headers_and_framing(client: TestClient) -> None:
    response = client.post("/v1/flows/flow_abc123/stream", json=BODY, headers=STREAM_HEADERS)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_stream(response.text).events
    assert [event.id for event in events] == [str(n) for n in range(1, len(events) + 1)]
    assert events[0].data["type"] == "start"
    assert {event.data["type"] for event in events[1:-1]} == {"token"}
    assert events[-1].data["type"] == "end"


def test_streamed_run_is_retrievable(client: TestClient) -> None:
    response = client.post("/v1/flows/flow_sql789/stream", json=BODY, headers=STREAM_HEADERS)
    events = parse_stream(response.text).events
    run_id = events[0].data["run_id"]

    run = client.get(f"/v1/runs/{run_id}", headers=auth()).json()

    assert run["status"] == "completed"
    assert run["flow_id"] == "flow_sql789"
    assert run["progress"] == 100
    assert run["output"] == "".join(str(event.data["content"]) for event in events[1:-1])
    assert run["usage"] == events[-1].data["usage"]


def test_odd_output_concatenates_byte_for_byte(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(fixtures_dir=fixtures_with_flows(tmp_path / "fixtures", ODD_FLOW))

    response = client.post("/v1/flows/flow_odd/stream", json=BODY, headers=STREAM_HEADERS)

    parsed = parse_stream(response.text)
    streamed = "".join(str(event.data["content"]) for event in parsed.events[1:-1])
    run = client.get(f"/v1/runs/{parsed.events[0].data['run_id']}", headers=auth()).json()
    assert streamed == run["output"]
    assert streamed.endswith(ODD_REPLY)
    assert parsed.events[-1].data["type"] == "end"
    assert parsed.comments == []
    assert "\u2028" not in response.text
    assert "\u0085" not in response.text


def test_midstream_failure_sends_one_error(client: TestClient) -> None:
    response = client.post("/v1/flows/flow_flaky01/stream", json=BODY, headers=STREAM_HEADERS)

    events = parse_stream(response.text).events
    types = [event.data["type"] for event in events]
    assert types == ["start"] + ["token"] * 12 + ["error"]
    run = client.get(f"/v1/runs/{events[0].data['run_id']}", headers=auth()).json()
    assert run["status"] == "failed"
    assert run["error"] == events[-1].data["error"]
    assert run["error"]["code"] == "FLOW_EXECUTION_FAILED"
    assert 0 < run["progress"] < 100
    assert run["output"] == "".join(str(event.data["content"]) for event in events[1:-1])


def test_resume_replays_events_after_id(client: TestClient) -> None:
    first = client.post("/v1/flows/flow_abc123/stream", json=BODY, headers=STREAM_HEADERS)
    events = parse_stream(first.text).events
    run_id = str(events[0].data["run_id"])
    resume = {**STREAM_HEADERS, "X-Run-ID": run_id, "Last-Event-ID": "3"}

    again = client.post("/v1/flows/flow_abc123/stream", json=BODY, headers=resume)

    assert again.status_code == 200
    replayed = parse_stream(again.text).events
    assert [(event.id, event.data) for event in replayed] == [
        (event.id, event.data) for event in events[3:]
    ]
    state = client.get("/_mock/state").json()
    assert state["runs"]["total"] == 1


def test_resume_of_failed_run_ends_with_error(client: TestClient) -> None:
    first = client.post("/v1/flows/flow_flaky01/stream", json=BODY, headers=STREAM_HEADERS)
    events = parse_stream(first.text).events
    resume = {**STREAM_HEADERS, "X-Run-ID": str(events[0].data["run_id"])}

    again = client.post("/v1/flows/flow_flaky01/stream", json=BODY, headers=resume)

    replayed = parse_stream(again.text).events
    assert [(event.id, event.data) for event in replayed] == [
        (event.id, event.data) for event in events
    ]


@pytest.mark.parametrize(
    ("headers", "status", "field", "reason"),
    [
        ({"Last-Event-ID": "2"}, 400, "X-Run-ID", "required with Last-Event-ID"),
        ({"X-Run-ID": "run_unknown"}, 404, "X-Run-ID", "not found"),
        ({"X-Run-ID": "RUN", "Last-Event-ID": "999"}, 400, "Last-Event-ID", "no such event"),
        ({"X-Run-ID": "RUN", "Last-Event-ID": "x"}, 400, "Last-Event-ID", None),
    ],
    ids=["id-without-run", "unknown-run", "id-past-end", "id-not-digits"],
)
def test_bad_resume_is_rejected(
    client: TestClient,
    headers: dict[str, str],
    status: int,
    field: str,
    reason: str | None,
) -> None:
    first = client.post("/v1/flows/flow_abc123/stream", json=BODY, headers=STREAM_HEADERS)
    run_id = str(parse_stream(first.text).events[0].data["run_id"])
    sent = {key: value.replace("RUN", run_id) for key, value in headers.items()}

    response = client.post(
        "/v1/flows/flow_abc123/stream", json=BODY, headers={**STREAM_HEADERS, **sent}
    )

    assert response.status_code == status
    details = response.json()["error"]["details"]
    assert details["field"] == field
    assert details["location"] == "header"
    if reason is not None:
        assert details["reason"] == reason


def test_resume_of_other_flow_rejected(client: TestClient) -> None:
    first = client.post("/v1/flows/flow_abc123/stream", json=BODY, headers=STREAM_HEADERS)
    run_id = str(parse_stream(first.text).events[0].data["run_id"])

    response = client.post(
        "/v1/flows/flow_sql789/stream", json=BODY, headers={**STREAM_HEADERS, "X-Run-ID": run_id}
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"]["reason"] == "run of another flow"


def test_thousands_of_aborted_streams_leave_nothing(make_app: Callable[..., Starlette]) -> None:
    app = make_app(stream_delay_ms=1, rate_limit="off", max_runs=100)
    engine = app.state.engine
    body = json.dumps(BODY).encode()

    async def abort_many(count: int) -> list[int]:
        seen = []
        for _ in range(count // 100):
            batch = [abort_stream(app, "flow_abc123", 3, body) for _ in range(100)]
            seen += await asyncio.gather(*batch)
        # Cancelled tasks finish on the next turns of the loop; a few turns are enough.
        for _ in range(10):
            await asyncio.sleep(0)
        return seen

    async def scenario() -> tuple[int, int, int, list[int]]:
        await abort_many(100)
        gc.collect()
        tasks_before, objects_before = len(asyncio.all_tasks()), len(gc.get_objects())
        seen = await abort_many(2000)
        gc.collect()
        return tasks_before, objects_before, len(asyncio.all_tasks()), seen

    tasks_before, objects_before, tasks_after, seen = asyncio.run(scenario())

    gc.collect()
    assert tasks_after == tasks_before
    assert all(count >= 3 for count in seen)
    assert engine.live == {}
    assert engine.open_streams == 0
    assert sum(isinstance(item, RunPlan) for item in gc.get_objects()) == 0
    # Each stream that left its plan, task or generator behind would add a dozen objects or more.
    assert len(gc.get_objects()) - objects_before < 2000
    counts = app.state.store.count_runs()
    assert counts == {"running": 0, "completed": 0, "failed": 100}


def test_aborted_stream_run_failed_client_gone(make_app: Callable[..., Starlette]) -> None:
    app = make_app(stream_delay_ms=1)
    finished: list[dict[str, object]] = []
    app.state.events.subscribe(lambda name, data: finished.append({"event": name, **data}))

    asyncio.run(abort_stream(app, "flow_abc123", 4, json.dumps(BODY).encode()))

    assert [event["event"] for event in finished] == ["flow.run.started", "flow.run.failed"]
    run = app.state.store.get_run(finished[0]["run_id"])
    assert run.status == "failed"
    assert run.error == {
        "code": "CLIENT_DISCONNECTED",
        "message": "The client disconnected before the stream ended.",
    }
    assert 0 < run.progress < 100
    assert run.usage.completion_tokens == len(run.output.split())


@pytest.mark.e2e
def test_no_compression_even_with_gzip(server: LiveServer) -> None:
    headers = {**STREAM_HEADERS, "Accept-Encoding": "gzip, br"}

    response = httpx.post(f"{server.url}/v1/flows/flow_odd/stream", json=BODY, headers=headers)

    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert parse_stream(response.text).events[-1].data["type"] == "end"


@pytest.mark.e2e
def test_first_event_and_heartbeats_come_early(server: LiveServer) -> None:
    url = f"{server.url}/v1/flows/flow_slow/stream"

    with httpx.stream("POST", url, json=BODY, headers=STREAM_HEADERS, timeout=10) as response:
        stream = response.iter_lines()
        lines = read_lines(stream, lambda seen: seen.count(": heartbeat") >= 3)
        run_id = data_lines(lines)[0]["run_id"]
        during = httpx.get(f"{server.url}/v1/runs/{run_id}", headers=auth()).json()

    assert lines[0] == "id: 1"
    assert data_lines(lines)[0]["type"] == "start"
    assert len(data_lines(lines)) == 1
    assert [line for line in lines if line.startswith("id:")] == ["id: 1"]
    assert during["status"] == "running"
    assert during["progress"] == 0
    assert during["output"] == ""


@pytest.mark.e2e
def test_run_in_flight_shows_partial_output(server: LiveServer) -> None:
    url = f"{server.url}/v1/flows/flow_paced/stream"

    with httpx.stream("POST", url, json=BODY, headers=STREAM_HEADERS, timeout=10) as response:
        stream = response.iter_lines()
        lines = read_lines(stream, lambda seen: len(data_lines(seen)) >= 4)
        events = data_lines(lines)
        during = httpx.get(f"{server.url}/v1/runs/{events[0]['run_id']}", headers=auth()).json()
    after = wait_for_status(server, str(events[0]["run_id"]), "failed")

    received = "".join(str(event["content"]) for event in events[1:])
    assert during["status"] == "running"
    assert 0 < during["progress"] < 100
    assert str(during["output"]).startswith(received)
    assert after["error"]["code"] == "CLIENT_DISCONNECTED"
    assert after["progress"] < 100
    assert str(after["output"]).startswith(received)


@pytest.mark.e2e
def test_resume_follows_live_run(server: LiveServer) -> None:
    url = f"{server.url}/v1/flows/flow_paced/stream"

    with httpx.stream("POST", url, json=BODY, headers=STREAM_HEADERS, timeout=10) as owner:
        stream = owner.iter_lines()
        start = data_lines(read_lines(stream, lambda seen: len(data_lines(seen)) >= 2))
        resume = {**STREAM_HEADERS, "X-Run-ID": str(start[0]["run_id"]), "Last-Event-ID": "2"}
        follower = httpx.post(url, json=BODY, headers=resume, timeout=10)
        run = httpx.get(f"{server.url}/v1/runs/{start[0]['run_id']}", headers=auth()).json()

    events = parse_stream(follower.text).events
    assert follower.status_code == 200
    assert events[0].id == "3"
    assert events[-1].data["type"] == "end"
    assert [event.id for event in events] == [str(n) for n in range(3, len(events) + 3)]
    assert run["status"] == "completed"
    assert run["output"] == str(start[1]["content"]) + "".join(
        str(event.data["content"]) for event in events[:-1]
    )
    assert wait_for_no_streams(server) == 0


def test_plain_run_rejects_resume_header(client: TestClient) -> None:
    response = client.post(
        "/v1/flows/flow_abc123/run", json=BODY, headers={**auth(), "X-Run-ID": "run_1"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "X-Run-ID"
