"""``make bench`` part ``handler``: the proxy handler's own CPU per warm ``tools/call``, measured as Lambda runs it.

Each variant runs in a fresh interpreter of its own (a container: ``functions/`` first on ``sys.path``, the function's
environment, ``proxy.app`` imported as the init phase does), which calls the Lambda handler directly in a loop on
warm API Gateway payload-2.0 events: no HTTP server, no dev server, no thread hand-off in the measurement. The store
(moto, over a kept connection) and the demo upstream run in processes of their own, so their work is not counted:
what is counted is the process's CPU time (``time.process_time``: user and system) for the handler's invocations, and,
apart, for the work each request left for after its answer (the ``tool.called`` audit write), which this process runs
after each invocation as the Lambda extension does (:mod:`gateway.after_answer`).

Two passes per variant: one without instrumentation for the totals, then one where the stages are timed with
``process_time`` around the functions that do them (the difference of the two totals is the instrumentation's own
cost, reported). The stages:

- ``token``: the access token's verification (:class:`gateway.proxy.verified_tokens.VerifiedTokens`, a cache hit after
  the first call of a token);
- ``grant read``: the grant's status (:class:`gateway.proxy.grant_status.GrantStatusCache`): the DynamoDB ``GetItem``'s
  client side (serialize, sign, send, parse) when it is not cached;
- ``parse``: the one parse of the client's body;
- ``exchange``: the upstream exchange (session id, request, the upstream's answer read and checked; the virtual
  server's whole work on a virtual route);
- ``endpoint``: the proxy endpoint's own glue (routing, Origin, the caller's checks, building the answer);
- ``Starlette``, ``observe + metrics`` (the request's log keys and its CloudWatch EMF document, written to standard
  output as on Lambda), ``Mangum`` (the event to ASGI and the answer back to a Lambda result);
- ``after the answer``: the audit write, run after the handler returned.

    python -m infra.bench_support.handler_cpu CODE_DIR SPEC_JSON RESULTS_FD   (a child; see measure_handler_cpu)
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ACCEPT = "application/json, text/event-stream"
PROTOCOL_VERSION = "2025-06-18"
STAGES = ("token", "grant read", "parse", "exchange", "endpoint", "Starlette", "observe + metrics", "Mangum")


# --- the child: one container ---------------------------------------------------------------------------------


class _Context:
    function_name = "proxy"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:proxy"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/proxy"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _event(sample: Mapping[str, Any], path: str, token: str, body: dict[str, Any], session: str | None) -> Any:
    event = copy.deepcopy(dict(sample))
    workspace, server = path.strip("/").split("/")[:2]
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"workspace": workspace, "server": server}
    event["headers"]["authorization"] = f"Bearer {token}"
    event["headers"]["mcp-protocol-version"] = PROTOCOL_VERSION
    if session:
        event["headers"]["mcp-session-id"] = session
    event["body"] = json.dumps(body, separators=(",", ":"))
    event["headers"]["content-length"] = str(len(event["body"]))
    return event


class _Timer:
    """Per-stage CPU time, accumulated by wrappers around the functions that do each stage."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)
        spent = self.spent
        clock = time.process_time
        if _is_async(original):

            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = clock()
                try:
                    return await original(*args, **kwargs)
                finally:
                    spent[stage] = spent.get(stage, 0.0) + clock() - started

            setattr(owner, name, timed_async)
        else:

            @functools.wraps(original)
            def timed(*args: Any, **kwargs: Any) -> Any:
                started = clock()
                try:
                    return original(*args, **kwargs)
                finally:
                    spent[stage] = spent.get(stage, 0.0) + clock() - started

            setattr(owner, name, timed)


def _is_async(function: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(function)


def _instrument() -> _Timer:
    """Time the stages (``_raw`` names: nested times, turned into exclusive stages by :func:`_stages`)."""
    from starlette.applications import Starlette

    import gateway.web.proxy.app as proxy_app
    from gateway.observability import ObserveRequests
    from gateway.proxy.grant_status import GrantStatusCache
    from gateway.proxy.verified_tokens import VerifiedTokens
    from gateway.virtual.server import VirtualServer

    timer = _Timer()
    timer.wrap(VerifiedTokens, "verify", "token")
    timer.wrap(GrantStatusCache, "is_active", "grant read")
    timer.wrap(proxy_app, "parse_client_body", "parse")
    timer.wrap(proxy_app, "relay", "exchange")
    timer.wrap(VirtualServer, "handle", "exchange")
    timer.wrap(proxy_app, "mcp_endpoint", "_endpoint")
    timer.wrap(Starlette, "__call__", "_starlette")
    timer.wrap(ObserveRequests, "__call__", "_observed")
    return timer


def _stages(raw: Mapping[str, float], total: float) -> dict[str, float]:
    """Exclusive stages from the nested times: each layer less what it calls."""
    inner = sum(raw.get(stage, 0.0) for stage in ("token", "grant read", "parse", "exchange"))
    endpoint = raw.get("_endpoint", 0.0)
    starlette = raw.get("_starlette", 0.0)
    observed = raw.get("_observed", 0.0)
    stages = {stage: raw.get(stage, 0.0) for stage in ("token", "grant read", "parse", "exchange")}
    stages["endpoint"] = endpoint - inner
    stages["Starlette"] = starlette - endpoint
    stages["observe + metrics"] = observed - starlette
    stages["Mangum"] = total - observed
    return stages


def _store_calls(calls_url: str) -> dict[str, int]:
    """The calls the store served so far, by operation (counted by the local stand-in, in its own process)."""
    import urllib.request

    with urllib.request.urlopen(calls_url, timeout=10) as response:  # noqa: S310 - the local stand-in
        counts: dict[str, int] = json.loads(response.read())
    return counts


def _reads_and_kms(before: Mapping[str, int], after: Mapping[str, int]) -> tuple[int, int, int]:
    def delta(match: Callable[[str], bool]) -> int:
        return sum(count - before.get(name, 0) for name, count in after.items() if match(name))

    reads = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")
    writes = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
    return (
        delta(lambda name: name.startswith("DynamoDB_20120810.") and name.split(".", 1)[1] in reads),
        delta(lambda name: name.startswith("DynamoDB_20120810.") and name.split(".", 1)[1] in writes),
        delta(lambda name: name.startswith("TrentService.")),
    )


def child(code_dir: str, spec_path: str, results_fd: str) -> None:
    """One container: init, warm-up, then a batch of invocations per command read on standard input (``plain``,
    ``timed``, ``quit``), each batch's figures written as a JSON line to ``results_fd``."""
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    results = os.fdopen(int(results_fd), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the EMF documents go to standard output, as on Lambda; not measured by anyone here
    sys.path.insert(0, code_dir)
    import proxy.app as function_module

    handler = function_module.handler
    after_answer = handler.after_answer
    after_answer.deferring = True  # this process runs the work after each answer, as the Lambda extension does
    context = _Context()
    sample = spec["sample_event"]
    path, token = spec["path"], spec["token"]

    def invoke(body: dict[str, Any], session: str | None) -> dict[str, Any]:
        result: dict[str, Any] = handler(_event(sample, path, token, body, session), context)
        after_answer.run()
        return result

    initialize = {
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1.0"},
        },
    }  # fmt: skip
    session = (invoke(initialize, None).get("headers") or {}).get("mcp-session-id")
    tool = spec["tool"]
    if tool is None:  # the route's first tool whose name ends as asked (a virtual route's prefixed name)
        listed = invoke({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, session)
        names = [item["name"] for item in json.loads(listed["body"])["result"]["tools"]]
        tool = next(name for name in names if name.endswith(spec["tool_suffix"]))
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": {"text": "x"}}}
    event = _event(sample, path, token, call, session)
    for _ in range(spec["warmup"]):
        answer = handler(copy.deepcopy(event), context)
        after_answer.run()
        if answer.get("statusCode") != 200 or '"result"' not in answer.get("body", ""):
            raise SystemExit(f"tools/call answered {answer.get('statusCode')}: {str(answer.get('body'))[:300]}")
    calls = spec["calls"]
    timer: _Timer | None = None
    results.write(json.dumps({"ready": tool}) + "\n")  # warm: the parent starts the rounds once every child is
    results.flush()
    for command in sys.stdin:
        if command.strip() == "quit":
            return
        if command.strip() == "timed" and timer is None:
            timer = _instrument()
        fresh = [copy.deepcopy(event) for _ in range(calls)]  # a fresh event per call, as Lambda decodes each
        before = _store_calls(spec["calls_url"])
        spent_handler = spent_after = 0.0
        for one in fresh:
            started = time.process_time()
            handler(one, context)
            answered = time.process_time()
            after_answer.run()
            spent_handler += answered - started
            spent_after += time.process_time() - answered
        reads, writes, kms = _reads_and_kms(before, _store_calls(spec["calls_url"]))
        figures: dict[str, Any] = {
            "tool": tool, "handler": spent_handler / calls * 1000, "after": spent_after / calls * 1000,
            "reads": reads / calls, "writes": writes / calls, "kms": kms / calls,
        }  # fmt: skip
        if timer is not None:
            raw = {name: value / calls * 1000 for name, value in timer.spent.items()}
            figures["stages"] = _stages(raw, figures["handler"])
            timer.spent.clear()
        results.write(json.dumps(figures) + "\n")
        results.flush()


class Container:
    """A child running :func:`child` for one variant."""

    def __init__(self, code_dir: Path, env: Mapping[str, str], spec: Mapping[str, Any], directory: Path) -> None:
        spec_path = directory / f"handler-spec-{id(self)}.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        read_end, write_end = os.pipe()
        module = "infra.bench_support.handler_cpu"
        command = [sys.executable, "-m", module, str(code_dir), str(spec_path), str(write_end)]
        self.process = subprocess.Popen(
            command, cwd=code_dir.parent, env=dict(env), stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            pass_fds=(write_end,),
        )  # fmt: skip
        os.close(write_end)
        self.results = os.fdopen(read_end, encoding="utf-8")

    def ready(self) -> None:
        """Wait until the child is initialized and warm."""
        self._line()

    def _line(self) -> dict[str, Any]:
        line = self.results.readline()
        if not line:
            self.process.wait(timeout=60)
            error = self.process.stderr.read() if self.process.stderr is not None else ""
            raise RuntimeError(f"handler CPU child failed ({self.process.returncode}): {error[-2000:]}")
        figures: dict[str, Any] = json.loads(line)
        return figures

    def batch(self, kind: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(kind + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        return self._line()

    def close(self) -> None:
        if self.process.poll() is None and self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.results.close()


if __name__ == "__main__":
    child(*sys.argv[1:4])
