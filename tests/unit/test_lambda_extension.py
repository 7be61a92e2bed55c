"""The internal Lambda extension (gateway.lambda_extension) runs the work a request left for after its answer, while
the answer is already on its way, and ends the invocation only then.

Lambda's side is played by a small HTTP server on 127.0.0.1 that implements what the Extensions API (2020-01-01)
documents for an internal extension: ``POST /extension/register`` (answered with a ``Lambda-Extension-Identifier``)
and ``GET /extension/event/next``, which tells Lambda the extension is done with the current event and blocks until
the next. The runtime's side (call the handler, post its answer) is the test itself, calling the function's handler
as the Python runtime does.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gateway.after_answer import AfterAnswer
from gateway.entry import Handler
from gateway.lambda_extension import EXTENSION_NAME, LambdaExtension

WAIT = 10.0  # seconds a step may take on a busy machine before the test fails (never slept)


class ExtensionsApi:
    """Lambda's Extensions API as an internal extension sees it."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.refuse = refuse
        self.registered: list[tuple[str, dict[str, Any]]] = []
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.asked_for_next = threading.Semaphore(0)
        """Released each time the extension asks for the next event: it is done with the current one."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                api.registered.append((self.headers.get("lambda-extension-name", ""), body))
                status = 403 if api.refuse else 200
                self.send_response(status)
                if not api.refuse:
                    self.send_header("lambda-extension-identifier", "3f1b0c3e-extension")
                self._end(b'{"functionName":"proxy","functionVersion":"$LATEST","handler":"proxy.app.handler"}')

            def do_GET(self) -> None:
                assert self.path == "/2020-01-01/extension/event/next"
                assert self.headers.get("lambda-extension-identifier") == "3f1b0c3e-extension"
                api.asked_for_next.release()
                event = api.events.get()
                self.send_response(200)
                self._end(json.dumps(event).encode())

            def _end(self, body: bytes) -> None:
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def invoke(self, deadline_ms: int) -> None:
        self.events.put({"eventType": "INVOKE", "deadlineMs": deadline_ms, "requestId": "r1"})

    def done(self) -> bool:
        """Whether the extension asked for the next event (the invocation is over for it)."""
        return self.asked_for_next.acquire(timeout=WAIT)

    def still_running(self) -> bool:
        """The extension has not asked for the next event (checked at once: it cannot, while the work it runs is
        blocked)."""
        return not self.asked_for_next.acquire(blocking=False)


@pytest.fixture
def api() -> Iterator[ExtensionsApi]:
    running = ExtensionsApi()
    yield running
    running.server.shutdown()
    running.server.server_close()


def test_the_answer_leaves_before_the_work_and_the_invocation_ends_after_it(api: ExtensionsApi) -> None:
    # Given a function whose extension registered during init and said it is ready
    after = AfterAnswer()
    extension = LambdaExtension(api.address, after)
    assert extension.start()
    assert api.registered == [(EXTENSION_NAME, {"events": ["INVOKE"]})]  # INVOKE only: internal extensions
    assert after.deferring
    assert api.done()  # its first "next": the init phase may end
    released = threading.Event()
    order: list[str] = []

    def audit() -> None:
        assert released.wait(WAIT)
        order.append("audit written")

    def mangum(event: dict[str, Any], context: Any) -> dict[str, Any]:
        after.defer(audit)
        return {"statusCode": 200, "body": "answer"}

    handler = Handler(mangum, after)
    handler.answered = extension.settled

    for number in (1, 2):  # two invocations: each waits for its own handler
        # When Lambda invokes the function (the runtime and the extension each get the event)
        api.invoke(deadline_ms=int((time.time() + 30) * 1000))
        answer = handler({"rawPath": "/demo/echo/mcp"}, None)
        order.append(f"answer {number} posted")

        # Then the runtime has the answer to post while the audit write has not happened, and the invocation is
        # not over: the extension has not asked for the next event
        assert answer["body"] == "answer"
        assert api.still_running()

        # When the write completes, Then the extension ends the invocation
        released.set()
        assert api.done()
        released.clear()
    assert order == ["answer 1 posted", "audit written", "answer 2 posted", "audit written"]
    assert extension.events == 2 and after.pending == 0


def test_a_handler_that_never_answers_does_not_hold_the_invocation_past_its_deadline(api: ExtensionsApi) -> None:
    # Given a registered extension
    after = AfterAnswer()
    extension = LambdaExtension(api.address, after)
    assert extension.start() and api.done()

    # When an invocation's deadline has passed without the handler answering (the runtime never called it)
    api.invoke(deadline_ms=0)

    # Then the extension gives up on it and asks for the next event
    assert api.done()


def test_a_refused_registration_leaves_the_work_inline() -> None:
    # Given Lambda refusing the registration
    api = ExtensionsApi(refuse=True)
    try:
        after = AfterAnswer()

        # When the function starts, Then no extension runs and work happens before the answer, as before
        assert not LambdaExtension(api.address, after).start()
        assert not after.deferring
        done: list[str] = []
        after.defer(lambda: done.append("audit"))
        assert done == ["audit"]
    finally:
        api.server.shutdown()
        api.server.server_close()


def test_nothing_listening_leaves_the_work_inline() -> None:
    after = AfterAnswer()
    assert not LambdaExtension("127.0.0.1:9", after).start()
    assert not after.deferring
