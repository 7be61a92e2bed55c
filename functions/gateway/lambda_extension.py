"""An internal Lambda extension that runs the container's work for after the answer (:mod:`gateway.after_answer`).

AWS Lambda Extensions API (version 2020-01-01): an internal extension is a thread of the runtime process that
registers during the init phase (``POST /extension/register``, events ``INVOKE`` only: internal extensions may not
register for ``SHUTDOWN``) and then asks for each event (``GET /extension/event/next``, which also says it is done
with the previous one). The invoke phase ends when the runtime and every extension have asked for the next event,
while "after receiving the function response from the runtime, Lambda returns the response to the client, even if
extensions are still running". So, per invocation: the thread receives ``INVOKE``, waits until the handler has
returned its answer (:meth:`LambdaExtension.settled`, called by the handler's wrapper in :mod:`gateway.entry`), runs
the queued work while the runtime posts the response, and only then asks for the next event. The time it takes is
billed and counted in the function's duration (CloudWatch ``PostRuntimeExtensionsDuration``), not in the client's
latency.

If registration fails the function keeps working and its work stays inline (before the answer). Once registered the
thread must keep asking for events (an extension that never does holds every invocation until it times out), so its
loop survives any error of the work and retries the API.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from typing import Any

from gateway.after_answer import AfterAnswer

logger = logging.getLogger("gateway.lambda_extension")

EXTENSION_NAME = "mcp-gateway-after-answer"
API_VERSION = "2020-01-01"
RETRY_SECONDS = 0.1
DEADLINE_MARGIN_SECONDS = 0.5


class LambdaExtension:
    """The extension of one container. ``api`` is ``AWS_LAMBDA_RUNTIME_API`` (``host:port``)."""

    def __init__(self, api: str, after_answer: AfterAnswer) -> None:
        self._api = api
        self._after_answer = after_answer
        self._identifier: str | None = None
        self._condition = threading.Condition()
        self._invoked = 0
        self._settled = 0
        self.events = 0
        """``INVOKE`` events received (for tests and logs)."""

    def start(self) -> bool:
        """Register (during init) and start the thread; True when the work for after the answer is now deferred.
        On failure nothing is started and the work stays inline."""
        try:
            status, headers, _ = self._request("POST", "register", {"events": ["INVOKE"]})
        except OSError as error:
            logger.warning("Lambda extension not registered (%s): work after the answer stays inline", error)
            return False
        self._identifier = headers.get("lambda-extension-identifier")
        if status != 200 or not self._identifier:
            logger.warning("Lambda extension not registered (HTTP %s): work after the answer stays inline", status)
            return False
        self._after_answer.deferring = True
        threading.Thread(target=self._loop, name=EXTENSION_NAME, daemon=True).start()
        return True

    def settled(self) -> None:
        """The handler has returned this invocation's answer (the runtime is posting it)."""
        with self._condition:
            self._settled += 1
            self._condition.notify_all()

    def _loop(self) -> None:
        while True:
            try:
                status, _, body = self._request("GET", "event/next")
            except OSError as error:  # the local API is not expected to fail; keep asking, never give up silently
                logger.error("Lambda extension: asking for the next event failed: %s", error)
                time.sleep(RETRY_SECONDS)
                continue
            if status != 200:
                logger.error("Lambda extension: next event answered HTTP %s", status)
                time.sleep(RETRY_SECONDS)
                continue
            event = _json(body)
            if event.get("eventType") != "INVOKE":
                continue
            self.events += 1
            self._await_answer(event.get("deadlineMs"))
            self._after_answer.run()

    def _await_answer(self, deadline_ms: Any) -> None:
        """Wait until the handler of this invocation has answered (Lambda runs one invocation at a time per
        container, so each settles once), but not past the invocation's deadline: a runtime that never called the
        handler must not hold the invocation until it times out."""
        deadline = float(deadline_ms) / 1000 - DEADLINE_MARGIN_SECONDS if isinstance(deadline_ms, int | float) else None
        with self._condition:
            self._invoked += 1
            while self._settled < self._invoked:
                remaining = None if deadline is None else deadline - time.time()
                if remaining is not None and remaining <= 0:
                    logger.error("Lambda extension: the handler did not answer before the deadline")
                    self._settled = self._invoked  # counted again from here
                    return
                self._condition.wait(remaining)

    def _request(self, method: str, path: str, document: Any = None) -> tuple[int, dict[str, str], bytes]:
        host, _, port = self._api.partition(":")
        connection = http.client.HTTPConnection(host, int(port or 80))  # no timeout: next blocks until an event
        headers = {"Lambda-Extension-Name": EXTENSION_NAME}
        if self._identifier is not None:
            headers = {"Lambda-Extension-Identifier": self._identifier}
        body = None if document is None else json.dumps(document).encode()
        try:
            connection.request(method, f"/{API_VERSION}/extension/{path}", body, headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, {name.lower(): value for name, value in response.getheaders()}, data
        except http.client.HTTPException as error:
            raise OSError(f"Extensions API: {error}") from error
        finally:
            connection.close()


def _json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
