"""The dev server behaves like API Gateway's HTTP API in front of Lambda: the event a function receives, route
selection, cookies, binary bodies, failures, concurrency and timeouts.

The functions under test are the handlers at the bottom of this module, served from a small template.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.devserver import REPO_ROOT, DevServer, start_dev_server
from infra.lambda_event import HttpApiRoutes, rest_api_event

EVENTS = REPO_ROOT / "events"
CODE_URI = str(Path(__file__).parent.relative_to(REPO_ROOT))
MODULE = Path(__file__).stem
BINARY = bytes(range(256))


# --- the functions served (handler signature: event, context) -------------------------------------------------


def echo_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers with the event and the context it was given, and sets two cookies."""
    described = {
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "cookies": ["session=abc; HttpOnly; Path=/", "theme=dark"],
        "body": json.dumps({"event": event, "context": described}),
    }


def binary(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/octet-stream"},
        "body": base64.b64encode(BINARY).decode(),
        "isBase64Encoded": True,
    }


def broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("this function is broken")


def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(float(event["queryStringParameters"]["seconds"]))
    return {"statusCode": 200, "body": context.log_stream_name}


def plain(event: dict[str, Any], context: Any) -> object:
    """Returns no proxy response: a dict without statusCode, or a string."""
    return {"hello": "world"} if event["pathParameters"]["kind"] == "dict" else "hello"


def whoami(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The process the container runs in, after sleeping ``seconds`` if asked."""
    time.sleep(float((event.get("queryStringParameters") or {}).get("seconds", "0")))
    body = {"pid": os.getpid(), "started": _process_start(os.getpid()), "stream": context.log_stream_name}
    return {"statusCode": 200, "body": json.dumps(body)}


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat field 22): with its pid, what names one
    process, since a busy machine can give a new process the pid of one that just ended. None: no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def big(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": "x" * (7 * 1024 * 1024)}


class _Recording:
    """A handler that leaves work for after its answer, as the gateway's entry point does (gateway.after_answer):
    the work waits on the FIFO the request names (until the test writes to it), then writes the request's marker."""

    def __init__(self) -> None:
        from gateway.after_answer import AfterAnswer

        self.after_answer = AfterAnswer()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        directory = Path(event["queryStringParameters"]["dir"])

        def record() -> None:
            with (directory / "release").open("rb") as fifo:  # blocks until the test opens it for writing
                fifo.read()
            (directory / "recorded").write_text(context.aws_request_id)

        self.after_answer.defer(record)
        return {"statusCode": 200, "body": "answered"}


recording = _Recording()


# --- fixtures -------------------------------------------------------------------------------------------------


def function(handler: str, *routes: str, timeout: int = 3, memory: int = 256) -> dict[str, Any]:
    events = {}
    for index, route in enumerate(routes):
        method, path = route.split(" ", 1)
        events[f"Route{index}"] = {"Type": "HttpApi", "Properties": {"Method": method, "Path": path}}
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "CodeUri": CODE_URI,
            "Handler": handler,
            "Timeout": timeout,
            "MemorySize": memory,
            "Events": events,
        },
    }


TEMPLATE: dict[str, Any] = {
    "Resources": {
        "EchoFunction": function(
            f"{MODULE}.echo_event",
            "GET /.well-known/oauth-protected-resource/{proxy+}",
            "ANY /echo/{name}",
            memory=384,
        ),
        "BinaryFunction": function(f"{MODULE}.binary", "GET /binary"),
        "BrokenFunction": function(f"{MODULE}.broken", "GET /broken"),
        "MissingFunction": function("no_such_module.handler", "GET /missing"),
        "SlowFunction": function(f"{MODULE}.slow", "GET /slow", timeout=1),
        "PlainFunction": function(f"{MODULE}.plain", "GET /plain/{kind}"),
        "BigFunction": function(f"{MODULE}.big", "GET /big"),
        "WhoamiFunction": function(f"{MODULE}.whoami", "GET /whoami", timeout=1),
        "RecordingFunction": function(f"{MODULE}.recording", "GET /recording", timeout=10),
    }
}


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    with start_dev_server(TEMPLATE, {}, default_base_url=False) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: DevServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


def received_event(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()["event"]
    return event


# --- the event ------------------------------------------------------------------------------------------------


def test_event_has_the_shape_of_the_committed_api_gateway_sample(client: httpx.Client) -> None:
    # Given the committed sample of a PRM request (shaped like `sam local generate-event apigateway http-api-proxy`)
    sample = json.loads((EVENTS / "metadata-prm.json").read_text())

    # When the same request goes through the dev server
    event = received_event(
        client.get(sample["rawPath"], headers={"User-Agent": "python-httpx/0.28.1", "Accept": "application/json"})
    )

    # Then the function receives an event with the same structure and route values
    assert set(event) == set(sample)
    assert set(event["requestContext"]) == set(sample["requestContext"])
    assert set(event["requestContext"]["http"]) == set(sample["requestContext"]["http"])
    for key in ("version", "routeKey", "rawPath", "rawQueryString", "pathParameters", "isBase64Encoded"):
        assert event[key] == sample[key], key
    context = event["requestContext"]
    assert context["routeKey"] == event["routeKey"] == "GET /.well-known/oauth-protected-resource/{proxy+}"
    assert context["stage"] == "$default"
    assert context["http"] == {
        "method": "GET",
        "path": sample["rawPath"],
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "python-httpx/0.28.1",
    }
    assert abs(context["timeEpoch"] / 1000 - time.time()) < 60
    assert "stageVariables" not in event
    assert all(name == name.lower() for name in event["headers"])
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_query_strings_and_repeated_headers_are_joined_with_commas(client: httpx.Client) -> None:
    # Given a request with a repeated query parameter and a repeated header
    # When it reaches the function
    event = received_event(
        client.get(
            "/echo/x?tag=a&tag=b&empty=&q=hello%20world",
            headers=[("X-Multi", "one"), ("X-Multi", "two")],
        )
    )

    # Then, as in API Gateway, the raw query string is kept and repeated values are joined with commas
    assert event["rawQueryString"] == "tag=a&tag=b&empty=&q=hello%20world"
    assert event["queryStringParameters"] == {"tag": "a,b", "empty": "", "q": "hello world"}
    assert event["headers"]["x-multi"] == "one,two"


def test_lambda_context_reports_the_template_settings(client: httpx.Client) -> None:
    # Given EchoFunction declared with 384 MB and a 3 s timeout
    # When it is invoked
    response = client.get("/echo/context")

    # Then its context carries its name, memory, a request id and the time left before its timeout
    context = response.json()["context"]
    assert context["function_name"] == "EchoFunction"
    assert context["memory_limit_in_mb"] == 384
    assert context["aws_request_id"] == response.json()["event"]["requestContext"]["requestId"]
    assert 2000 < context["remaining_ms"] <= 3000


# --- route selection ------------------------------------------------------------------------------------------


def test_the_most_specific_route_wins() -> None:
    # Given the routes of the AWS documentation's example, plus a method-specific route next to an ANY route
    table: HttpApiRoutes[str] = HttpApiRoutes()
    for route in (
        "ANY /{proxy+}",
        "GET /pets/{proxy+}",
        "GET /pets/dog/{id}",
        "GET /pets/dog/1",
        "ANY /toys/{id}",
        "GET /toys/{id}",
    ):
        method, path = route.split(" ", 1)
        table.add(method, path, route)

    def selected(method: str, path: str) -> str | None:
        match = table.match(method, path)
        return None if match is None else match.target

    # Then literal segments beat variables, variables beat greedy variables, and a named method beats ANY
    assert selected("GET", "/pets/dog/1") == "GET /pets/dog/1"
    assert selected("GET", "/pets/dog/2") == "GET /pets/dog/{id}"
    assert selected("GET", "/pets/cat/1") == "GET /pets/{proxy+}"
    assert selected("POST", "/pets/dog/1") == "ANY /{proxy+}"
    assert selected("GET", "/toys/ball") == "GET /toys/{id}"
    assert selected("DELETE", "/toys/ball") == "ANY /toys/{id}"


def test_path_parameters_are_decoded_and_greedy_ones_keep_their_slashes() -> None:
    # Given a greedy route and a parameter route
    table: HttpApiRoutes[str] = HttpApiRoutes()
    table.add("GET", "/.well-known/oauth-protected-resource/{proxy+}", "prm")
    table.add("ANY", "/{workspace}/{server}/mcp", "proxy")

    # Then the greedy variable captures the rest of the path, and no route matches an empty variable
    match = table.match("GET", "/.well-known/oauth-protected-resource/demo/echo/mcp")
    assert match is not None
    assert match.path_parameters == {"proxy": "demo/echo/mcp"}
    assert table.match("GET", "/.well-known/oauth-protected-resource") is None
    assert table.match("GET", "/.well-known/oauth-protected-resource/") is None
    match = table.match("POST", "/my%20ws/echo/mcp")
    assert match is not None
    assert match.path_parameters == {"workspace": "my ws", "server": "echo"}
    assert table.match("POST", "//echo/mcp") is None


def test_every_route_of_the_template_is_served(template: dict[str, Any]) -> None:
    # Given the real template.yaml
    server = DevServer(template)
    try:
        # Then each declared route reaches its own function
        for name, function in server.functions.items():
            for route in function.spec.routes:
                path = route.path.replace("{proxy+}", "a/b").replace("{", "").replace("}", "")
                method = "POST" if route.method == "ANY" else route.method
                match = server.routes.match(method, path)
                assert match is not None, route
                assert match.target.spec.logical_id == name, route
    finally:
        server.stop()


def test_unknown_routes_get_api_gateways_404(client: httpx.Client) -> None:
    # When a path or a method matches no route
    for method, path in (("GET", "/nowhere"), ("POST", "/binary"), ("GET", "/echo/a/b")):
        response = client.request(method, path)

        # Then API Gateway's own 404 comes back
        assert response.status_code == 404
        assert response.json() == {"message": "Not Found"}


# --- cookies and bodies ---------------------------------------------------------------------------------------


def test_cookies_move_between_the_cookie_header_and_the_cookies_lists(client: httpx.Client) -> None:
    # Given a browser sending two cookies
    response = client.get("/echo/cookies", headers={"Cookie": "a=1; b=two"})

    # Then the function receives them in `cookies`, not as a header
    event = received_event(response)
    assert event["cookies"] == ["a=1", "b=two"]
    assert "cookie" not in event["headers"]
    # And each cookie the function returns becomes its own Set-Cookie header
    assert response.headers.get_list("set-cookie") == ["session=abc; HttpOnly; Path=/", "theme=dark"]


@pytest.mark.parametrize(
    ("content_type", "encoded"),
    [
        ("application/json", False),
        ("text/plain; charset=utf-8", False),
        ("application/x-www-form-urlencoded", True),
        ("application/octet-stream", True),
    ],
)
def test_binary_and_form_bodies_arrive_base64_encoded(client: httpx.Client, content_type: str, encoded: bool) -> None:
    body = b'{"a": 1}' if content_type == "application/json" else b"grant_type=authorization_code&code=x"
    if content_type == "application/octet-stream":
        body = BINARY

    # When a body of this media type is posted
    event = received_event(client.post("/echo/body", content=body, headers={"Content-Type": content_type}))

    # Then it is base64-encoded exactly when API Gateway would encode it, and decodes to the bytes sent
    assert event["isBase64Encoded"] is encoded
    received = base64.b64decode(event["body"]) if encoded else event["body"].encode()
    assert received == body


def test_base64_responses_are_decoded_for_the_client(client: httpx.Client) -> None:
    response = client.get("/binary")

    assert response.status_code == 200
    assert response.content == BINARY
    assert response.headers["content-type"] == "application/octet-stream"


def test_results_without_status_code_become_json_200s(client: httpx.Client) -> None:
    # When functions return a bare dict or a string, as AWS allows
    as_dict = client.get("/plain/dict")
    as_string = client.get("/plain/string")

    # Then API Gateway sends them as JSON with status 200
    assert (as_dict.status_code, as_dict.json()) == (200, {"hello": "world"})
    assert (as_string.status_code, as_string.json()) == (200, "hello")
    assert as_dict.headers["content-type"] == "application/json"


# --- failures -------------------------------------------------------------------------------------------------


def test_a_raising_or_unimportable_function_gets_a_502_and_the_server_keeps_serving(client: httpx.Client) -> None:
    # When a function raises, and another cannot even be imported
    for path in ("/broken", "/missing"):
        response = client.get(path)

        # Then the client gets a 5xx in API Gateway's format
        assert response.status_code == 502
        assert response.json() == {"message": "Internal Server Error"}

    # And the server still serves other functions
    assert client.get("/echo/still-alive").status_code == 200


def test_responses_over_lambdas_6_mb_limit_fail(client: httpx.Client) -> None:
    response = client.get("/big")

    assert response.status_code == 502


def test_request_log_lines_carry_no_query_string(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    # Given a callback request whose query string carries an authorization code
    caplog.set_level(logging.INFO, logger="infra.devserver")

    # When it is served
    client.get("/echo/callback?code=SECRET-CODE&state=xyz", headers={"Authorization": "Bearer SECRET-TOKEN"})

    # Then the access log names method, path, status and function, and neither the code nor the token
    lines = [record.getMessage() for record in caplog.records if record.name == "infra.devserver"]
    assert any(line.startswith("GET /echo/callback 200 ") and line.endswith("EchoFunction") for line in lines)
    assert not any("SECRET" in line for line in lines)


# --- containers and timeouts ----------------------------------------------------------------------------------


def test_simultaneous_requests_run_in_separate_containers(client: httpx.Client) -> None:
    # Given two requests to one function that each take 0.6 s
    results: list[httpx.Response] = []

    def call() -> None:
        results.append(client.get("/slow", params={"seconds": "0.6"}))

    def send_together() -> float:
        threads = [threading.Thread(target=call) for _ in range(2)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started

    # When they are sent at the same time, twice (the first time, each container's cold start comes first)
    send_together()
    elapsed = send_together()

    # Then each ran in its own container (its own log stream), concurrently
    assert [response.status_code for response in results] == [200] * 4
    assert results[0].text != results[1].text
    assert {response.text for response in results[2:]} == {response.text for response in results[:2]}
    assert elapsed < 1.1


def test_a_function_running_past_its_timeout_fails(client: httpx.Client) -> None:
    # Given SlowFunction's 1 s timeout, and a warm container (the timeout counts from the invocation, not from a
    # container's init phase, as on Lambda)
    assert client.get("/slow", params={"seconds": "0"}).status_code == 200
    started = time.perf_counter()

    # When it runs for 2 s
    response = client.get("/slow", params={"seconds": "2"})

    # Then the client gets a 502 once the timeout expires, not when the function finally returns
    assert response.status_code == 502
    assert time.perf_counter() - started < 1.8


def test_the_integration_timeout_answers_503() -> None:
    # Given a function allowed 3 s behind an API whose integration timeout is 0.3 s (30 s on AWS)
    slow_template = {"Resources": {"SlowFunction": function(f"{MODULE}.slow", "GET /slow", timeout=3)}}
    with start_dev_server(slow_template, {}, default_base_url=False, integration_timeout=0.3) as server:
        # When the function takes longer than that
        response = httpx.get(f"{server.url}/slow", params={"seconds": "1"}, timeout=5)

    # Then API Gateway gives up with 503 Service Unavailable
    assert response.status_code == 503
    assert response.json() == {"message": "Service Unavailable"}


def test_the_rest_api_event_carries_the_same_request_in_payload_format_1() -> None:
    # Given a payload-2.0 event with cookies, a repeated query parameter and path parameters
    http_event = {
        "version": "2.0",
        "routeKey": "GET /{workspace}/{server}/authorize",
        "rawPath": "/demo/echo/authorize",
        "rawQueryString": "scope=a&scope=b&state=x%20y",
        "cookies": ["one=1", "two=2"],
        "headers": {"host": "gw.example.com", "user-agent": "t"},
        "pathParameters": {"workspace": "demo", "server": "echo"},
        "requestContext": {
            "requestId": "r1",
            "timeEpoch": 1,
            "http": {
                "method": "GET",
                "path": "/demo/echo/authorize",
                "sourceIp": "203.0.113.7",
                "protocol": "HTTP/1.1",
            },
        },
        "isBase64Encoded": False,
    }

    # When the streaming deployment's REST API delivers the same request
    event = rest_api_event(http_event)

    # Then it is a Lambda proxy event of its route, the cookies back in the Cookie header, every query value kept, the
    # caller's address in identity, and the stage in the context's path only
    assert (event["resource"], event["path"], event["httpMethod"]) == (
        "/{workspace}/{server}/authorize",
        "/demo/echo/authorize",
        "GET",
    )
    assert event["headers"]["cookie"] == "one=1; two=2"
    assert event["multiValueQueryStringParameters"] == {"scope": ["a", "b"], "state": ["x y"]}
    assert event["queryStringParameters"] == {"scope": "b", "state": "x y"}
    assert event["pathParameters"] == {"workspace": "demo", "server": "echo"}
    assert event["requestContext"]["identity"]["sourceIp"] == "203.0.113.7"
    assert (event["requestContext"]["stage"], event["requestContext"]["path"]) == ("live", "/live/demo/echo/authorize")


def test_each_container_is_a_process_of_its_own_and_a_timed_out_one_is_replaced(
    server: DevServer, client: httpx.Client
) -> None:
    # Given a function's container, and another function's (each request waits until the container settled: it is
    # busy until then, as a Lambda environment is until its invocation ends, and another request would start another)
    first = client.get("/whoami").json()
    assert server.settle(timeout=10)
    again = client.get("/whoami").json()
    echo_container = client.get("/echo/x").json()["context"]["log_stream_name"]

    # Then a container is a process of its own (not the dev server's), kept warm between invocations
    assert first["pid"] != os.getpid()
    assert again == first
    assert echo_container != first["stream"]

    # When the container outlives its function's timeout
    assert client.get("/whoami", params={"seconds": "3"}).status_code == 502
    assert server.settle(timeout=10)

    # Then its process is gone (killed, as Lambda resets a timed-out environment) and the next call gets a new one
    replaced = client.get("/whoami").json()
    assert (replaced["pid"], replaced["started"]) != (first["pid"], first["started"])
    assert _process_start(first["pid"]) != first["started"]  # no such process, or another one with its pid


def test_a_container_runs_the_work_left_for_after_the_answer_once_the_answer_has_left(
    server: DevServer, client: httpx.Client, tmp_path: Path
) -> None:
    # Given a function whose request leaves work for after its answer (the proxy's audit event), which here waits
    # until the test lets it go
    os.mkfifo(tmp_path / "release")

    # When the client calls it
    answer = client.get("/recording", params={"dir": str(tmp_path)})

    # Then the answer arrives while the work has not run (it could not have: it is waiting on the FIFO)
    assert answer.status_code == 200 and answer.text == "answered"
    assert not (tmp_path / "recorded").exists()

    # And once the work may go on, the container runs it, and the dev server counts the container busy until then
    with (tmp_path / "release").open("wb") as fifo:
        fifo.write(b"go")
    assert server.settle(timeout=10)
    assert (tmp_path / "recorded").read_text()


def test_without_its_fork_server_the_dev_server_starts_containers_as_new_interpreters() -> None:
    # Given a dev server whose fork server died before any container started
    with start_dev_server(TEMPLATE, {}, default_base_url=False) as running:
        if not running.fork_servers:
            pytest.skip("no fork server on this system: containers are new interpreters anyway")
        for fork_server in running.fork_servers:
            fork_server.process.kill()
            fork_server.process.wait()

        # When a function is called
        with httpx.Client(base_url=running.url, timeout=30) as http:
            answer = http.get("/whoami")

        # Then it still answers, from a container process of its own
        assert answer.status_code == 200, answer.text
        assert answer.json()["pid"] != os.getpid()
