"""A simulated Lambda container in a process of its own, as Lambda runs one execution environment per process.

The dev server (:class:`infra.devserver.LambdaFunction`) starts one :class:`ContainerProcess` per container it
needs and hands it one invocation at a time over a socket pair: a frame is a 4-byte big-endian length and a JSON
document (``{"event": ..., "request_id": ..., "timeout": ...}`` in, ``{"result": ...}`` or ``{"error": ...}``
out; Lambda's invocations are JSON too, so a result that is not JSON fails as Lambda's ``Runtime.MarshalError``
does). The container imports the handler as soon as it starts (its init phase: the entry point builds its own
runtime from the environment, a cold start) and says how that went in a first frame (``{"init": null}`` or
``{"init": error}``); as on Lambda, the function's timeout counts from the invocation, not from the init phase,
which has a limit of its own (:data:`INIT_SECONDS`). It logs what the handler logs to the terminal it shares with
the dev server, and reports a handler's exception (logged here with its traceback, as Lambda logs it) as an error;
a failed init is tried again on the next invocation. A container that outlives its timeout is killed, as Lambda
resets a timed-out execution environment; the next invocation starts a new one. The container stops when its socket
closes (the dev server stopped, or died).

    python -m infra.child_process infra.lambda_container --fd N --code-dir DIR --handler proxy.app.handler ...
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from infra.child_process import REPO_ROOT, python_environment
from infra.template import FunctionSpec

log = logging.getLogger("infra.devserver")

_LENGTH = struct.Struct(">I")
STOP_SECONDS = 5.0
# Lambda's init phase may take 10 s; a local machine busy with a test suite is given more.
INIT_SECONDS = 60.0
# Loggers whose per-request lines the dev server's terminal does without (as ``make dev`` sets them).
QUIET_LOGGERS = ("mcp", "httpx", "botocore", "werkzeug")

Handler = Callable[[dict[str, Any], Any], Any]


class FunctionFailed(Exception):
    """The function could not be imported, raised, or returned a result API Gateway rejects."""


class HandlerError(FunctionFailed):
    """The handler raised (or could not be imported) in a container process, which logged it with its traceback."""


class FunctionTimedOut(Exception):
    """The invocation outlived the function's timeout or the integration timeout."""


class LambdaContext:
    """The context object Lambda passes to a Python handler (the attributes handlers and Powertools read)."""

    def __init__(
        self,
        function_name: str,
        *,
        memory_size: int,
        request_id: str,
        log_stream_name: str,
        timeout: float,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = memory_size
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = log_stream_name
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --- frames -----------------------------------------------------------------------------------------------------


def send_frame(sock: socket.socket, document: Any) -> None:
    data = json.dumps(document, separators=(",", ":")).encode()
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def receive_frame(sock: socket.socket) -> Any:
    """The next document, or None when the other end closed. Raises ``TimeoutError`` per the socket's timeout."""
    header = _receive_exactly(sock, _LENGTH.size)
    if header is None:
        return None
    body = _receive_exactly(sock, _LENGTH.unpack(header)[0])
    return None if body is None else json.loads(body)


# --- the dev server's side ------------------------------------------------------------------------------------


def container_arguments(spec: FunctionSpec, *, code_dir: Path, log_stream_name: str, log_level: int) -> dict[str, Any]:
    """What a container needs to know besides its socket (:func:`main`'s options, :func:`serve_invocations`'s)."""
    return {
        "code_dir": str(code_dir),
        "handler": spec.handler,
        "function_name": spec.logical_id,
        "memory": spec.memory_size,
        "log_stream": log_stream_name,
        "log_level": logging.getLevelName(log_level),
    }


class ContainerProcess:
    """One container of ``spec`` in a process of its own, talking over ``sock``: a process this one started
    (:meth:`spawn`), or one a fork server started (``pid``, see :mod:`infra.lambda_zygote`)."""

    def __init__(
        self, spec: FunctionSpec, sock: socket.socket, *, process: subprocess.Popen[bytes] | None = None, pid: int = 0
    ) -> None:
        self.spec = spec
        self._socket = sock
        self._process = process
        self.pid = process.pid if process is not None else pid
        self._initialized = False

    @classmethod
    def spawn(
        cls, spec: FunctionSpec, *, code_dir: Path, env: Mapping[str, str], log_stream_name: str, log_level: int
    ) -> ContainerProcess:
        """A new interpreter for the container, with ``env`` as its environment."""
        ours, theirs = socket.socketpair()
        options = container_arguments(spec, code_dir=code_dir, log_stream_name=log_stream_name, log_level=log_level)
        command = [sys.executable, "-m", "infra.child_process", __name__, "--fd", str(theirs.fileno())]
        for name, value in options.items():
            command += [f"--{name.replace('_', '-')}", str(value)]
        try:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=python_environment(dict(env)),
                stdin=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return cls(spec, ours, process=process)

    @property
    def running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        try:
            os.kill(self.pid, 0)  # a forked container's fork server reaps it at once when it exits
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def invoke(self, event: dict[str, Any], *, request_id: str, timeout: float) -> Any:
        """The handler's result. Raises :class:`FunctionTimedOut` (the container is killed, as Lambda resets it),
        :class:`HandlerError` when the handler raised, :class:`FunctionFailed` when the container died."""
        try:
            if not self._initialized:
                self._socket.settimeout(INIT_SECONDS)
                init = receive_frame(self._socket)
                self._initialized = True
                if init is not None and init.get("init") is not None:
                    raise HandlerError(f"{self.spec.logical_id}: {init['init']['type']}: {init['init']['message']}")
            self._socket.settimeout(timeout)
            send_frame(self._socket, {"event": event, "request_id": request_id, "timeout": timeout})
            reply = receive_frame(self._socket)
        except TimeoutError:
            self.stop(kill=True)
            raise FunctionTimedOut(f"{self.spec.logical_id} did not answer within {timeout:g} s") from None
        except OSError as error:
            reply = None
            log.debug("%s: container connection failed: %s", self.spec.logical_id, error)
        if reply is None:
            self.stop(kill=True)
            raise FunctionFailed(f"{self.spec.logical_id}: the container (pid {self.pid}) exited")
        if "error" in reply:
            raise HandlerError(f"{self.spec.logical_id}: {reply['error']['type']}: {reply['error']['message']}")
        return reply["result"]

    def await_settled(self, timeout: float) -> int:
        """Wait for the container's ``{"settled": ...}`` frame after an answer: the work the request left for after
        the answer is done and the container is free (Lambda's invocation, extensions included, is over). Returns how
        many pieces of work ran; a container that does not settle within ``timeout`` is killed, as Lambda resets an
        execution environment whose extensions outlive the function's timeout."""
        if self._socket.fileno() < 0:
            return 0  # stopped: nothing to wait for
        try:
            self._socket.settimeout(timeout)
            frame = receive_frame(self._socket)
        except (OSError, ValueError) as error:
            log.warning("%s: the container did not settle after its answer (%s)", self.spec.logical_id, error)
            frame = None
        if frame is None or "settled" not in frame:
            self.stop(kill=True)
            return 0
        settled: int = frame["settled"]
        return settled

    def stop(self, *, kill: bool = False) -> None:
        """Idempotent. The container exits when its socket closes; one still busy is killed after a grace period
        (at once with ``kill``)."""
        with contextlib.suppress(OSError):
            self._socket.close()
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        if kill:
            self._kill()
        deadline = time.monotonic() + STOP_SECONDS
        while self.running:
            if time.monotonic() > deadline:
                self._kill()
                deadline = time.monotonic() + STOP_SECONDS
            if self._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=0.05)
            else:
                time.sleep(0.02)  # not our child: nothing to wait on but its pid

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


# --- the container's side -------------------------------------------------------------------------------------


def _load_handler(code_dir: str, dotted: str) -> Handler:
    module_name, _, attribute = dotted.rpartition(".")
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    handler = getattr(importlib.import_module(module_name), attribute, None)
    if handler is None:
        raise FunctionFailed(f"{module_name} has no {attribute!r}")
    if not callable(handler):
        raise FunctionFailed(f"{dotted} is not callable")
    loaded: Handler = handler
    return loaded


def _error(error: BaseException) -> dict[str, Any]:
    return {"error": {"type": type(error).__name__, "message": str(error)}}


def _init(arguments: argparse.Namespace) -> tuple[Handler | None, dict[str, Any] | None]:
    try:
        return _load_handler(arguments.code_dir, arguments.handler), None
    except BaseException as error:  # the init phase failed: answered as an error, tried again next time
        log.error("%s: cannot import handler %s: %s", arguments.function_name, arguments.handler, error)
        return None, _error(error)["error"]


def _take_after_answer(handler: Handler | None) -> Any:
    """The handler's queue of work for after the answer (gateway.after_answer), now run by this container after each
    answer as Lambda's extension runs it (None for a handler without one)."""
    after_answer = getattr(handler, "after_answer", None)
    if after_answer is not None:
        after_answer.deferring = True
    return after_answer


def serve_invocations(sock: socket.socket, arguments: argparse.Namespace) -> None:
    """One invocation at a time: its answer frame, then the work the request left for after the answer (run while
    the dev server relays the answer, as Lambda returns the response while an extension still runs), then a
    ``{"settled": ...}`` frame: the container is free again."""
    handler, failure = _init(arguments)
    send_frame(sock, {"init": failure})
    while (job := receive_frame(sock)) is not None:
        if handler is None:
            handler, failure = _init(arguments)  # a failed init phase is tried again on the next invocation
        after_answer = _take_after_answer(handler)
        try:
            if handler is None:
                send_frame(sock, {"error": failure})
            else:
                _answer(sock, arguments, job, handler)
        finally:
            send_frame(sock, {"settled": after_answer.run() if after_answer is not None else 0})


def _answer(sock: socket.socket, arguments: argparse.Namespace, job: dict[str, Any], handler: Handler) -> None:
    context = LambdaContext(
        arguments.function_name,
        memory_size=arguments.memory,
        request_id=job["request_id"],
        log_stream_name=arguments.log_stream,
        timeout=float(job["timeout"]),
    )
    try:
        result = handler(job["event"], context)
    except BaseException as error:  # a Lambda runtime reports any failure, and the container lives on
        log.error("%s raised\n%s", arguments.function_name, traceback.format_exc().rstrip())
        send_frame(sock, _error(error))
        return
    try:
        send_frame(sock, {"result": result})
    except (TypeError, ValueError) as error:
        log.error("%s returned a result that is not JSON: %s", arguments.function_name, error)
        send_frame(sock, {"error": {"type": "Runtime.MarshalError", "message": str(error)}})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A simulated Lambda container (started by the dev server).")
    parser.add_argument("--fd", type=int, required=True, help="the socket the invocations arrive on")
    parser.add_argument("--code-dir", required=True)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--function-name", required=True)
    parser.add_argument("--memory", type=int, required=True)
    parser.add_argument("--log-stream", required=True)
    parser.add_argument("--log-level", default="INFO")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=arguments.log_level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with socket.socket(fileno=arguments.fd) as sock:
        serve_invocations(sock, arguments)


if __name__ == "__main__":
    main()
