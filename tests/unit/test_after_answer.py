"""Work after the answer (gateway.after_answer): the proxy's tool-call audit event is written once the client has its
answer where a runner runs the queue (Lambda's buffered deployment, the local stack's containers), and before it
everywhere else; a failing piece of work fails neither the request nor the runner."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.after_answer import AfterAnswer
from gateway.config import parse_config
from gateway.web.proxy.app import create_app
from infra.placeholders import grant_backed_token
from tests.support.runtime import example_config_data, memory_runtime
from tests.unit.proxy.scripted_upstream import ScriptedUpstream, scripted_upstream

CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}


def test_without_a_runner_work_runs_at_once() -> None:
    after = AfterAnswer()
    done: list[str] = []
    after.defer(lambda: done.append("audit"))
    assert done == ["audit"] and after.pending == 0


def test_with_a_runner_work_waits_for_it_and_runs_in_order() -> None:
    after = AfterAnswer()
    after.deferring = True
    done: list[str] = []
    after.defer(lambda: done.append("first"))
    after.defer(lambda: done.append("second"))
    assert done == [] and after.pending == 2
    assert after.run() == 2
    assert done == ["first", "second"] and after.pending == 0


def test_failing_work_is_logged_and_counted_and_the_rest_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    after = AfterAnswer()
    after.deferring = True
    done: list[str] = []

    def broken() -> None:
        raise RuntimeError("the rollup table is gone")

    after.defer(broken)
    after.defer(lambda: done.append("audit"))
    with caplog.at_level(logging.ERROR, logger="gateway.after_answer"):
        assert after.run() == 2
    assert done == ["audit"] and after.failures == 1
    assert "work after the answer failed" in caplog.text


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with scripted_upstream() as running:
        yield running


def _gateway(upstream: ScriptedUpstream, *, deferring: bool) -> tuple[Any, TestClient, str]:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["upstream"] = upstream.url
    runtime = memory_runtime(parse_config(data))
    runtime.after_answer.deferring = deferring
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    return runtime, TestClient(create_app(runtime)), grant_backed_token(runtime, route, subject="alice")


def _tool_events(runtime: Any) -> list[Any]:
    now = runtime.now()
    return [e for e in runtime.audit_log.events("demo", since=now - 60, until=now + 60) if e.kind == "tool.called"]


def _post(client: TestClient, token: str) -> Any:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    return client.post("/demo/echo/mcp", content=json.dumps(CALL), headers=headers)


def test_the_tool_call_audit_event_is_written_after_the_answer_where_a_runner_runs_the_queue(
    upstream: ScriptedUpstream,
) -> None:
    # Given the proxy in a container whose runner runs the work after each answer (Lambda's extension, the local
    # stack's container process)
    runtime, client, token = _gateway(upstream, deferring=True)

    # When a client calls a tool
    answer = _post(client, token)

    # Then it has its answer before the audit event is written: the write waits for the runner
    assert answer.status_code == 200 and "result" in answer.json()
    assert _tool_events(runtime) == []
    assert runtime.after_answer.pending == 1

    # And once the runner ran, the event is there, with how the call ended
    runtime.after_answer.run()
    [event] = _tool_events(runtime)
    assert (event.detail["tool"], event.detail["outcome"], event.user_id) == ("echo", "ok", "alice")


def test_without_a_runner_the_event_is_written_before_the_answer(upstream: ScriptedUpstream) -> None:
    # Given the proxy where nothing runs work after the answer (the streaming deployment, make invoke)
    runtime, client, token = _gateway(upstream, deferring=False)

    # When a client calls a tool, Then the event is written by the time it has its answer
    assert _post(client, token).status_code == 200
    assert [e.detail["tool"] for e in _tool_events(runtime)] == ["echo"]
    assert runtime.after_answer.pending == 0
