"""A fork server for the dev server's container processes: it imports once what the functions' containers share
(the libraries and the gateway's core, as a Lambda layer is shared: :data:`SHARED`), and forks a new container
process for each container the dev server starts. Each forked container then runs its own init phase (imports its
handler module, which builds its own runtime from the environment) and serves its invocations as a spawned one does
(:func:`infra.lambda_container.serve_invocations`); only the shared imports are saved, which a new interpreter
repeats for every container (about half a second of CPU each on this machine, more than the rest of a cold start).

The fork server stays single-threaded (a fork copies only the thread that calls it), ignores SIGCHLD so the kernel
reaps the containers it forked, and stops when the dev server closes its control socket (or dies). Linux only (it
passes each container's socket over a ``SOCK_SEQPACKET`` Unix socket); elsewhere the dev server spawns new
interpreters.

    python -m infra.child_process infra.lambda_zygote --fd N --code-dir DIR --log-level INFO
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
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.child_process import REPO_ROOT, python_environment
from infra.lambda_container import (
    INIT_SECONDS,
    QUIET_LOGGERS,
    ContainerProcess,
    FunctionFailed,
    container_arguments,
    serve_invocations,
)
from infra.template import FunctionSpec

log = logging.getLogger("infra.devserver")

# What every function's container imports before its own handler module; a module missing here is skipped.
SHARED = (
    "json",
    "asyncio",
    "pydantic",
    "starlette.applications",
    "starlette.routing",
    "mangum",
    "boto3",
    "botocore.client",
    "httpx",
    "jinja2",
    "cryptography.hazmat.primitives.serialization",
    "gateway.settings",
    "gateway.config",
    "gateway.runtime",
)
READY = b"ready"
AVAILABLE = sys.platform == "linux" and hasattr(socket, "SOCK_SEQPACKET") and hasattr(socket, "send_fds")


class Zygote:
    """The dev server's side: a fork server for the containers of the functions in ``code_dir``, started at once
    (its imports run while the dev server starts), used from the first container on."""

    def __init__(self, code_dir: Path, env: Mapping[str, str], log_level: int) -> None:
        self.code_dir = code_dir
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [sys.executable, "-m", "infra.child_process", __name__, "--fd", str(theirs.fileno())]
        command += ["--code-dir", str(code_dir), "--log-level", logging.getLevelName(log_level)]
        try:
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=python_environment(dict(env)),
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            self._control.close()
            raise
        finally:
            theirs.close()
        self._lock = threading.Lock()
        self._ready = False

    def fork(self, spec: FunctionSpec, log_stream_name: str, log_level: int) -> ContainerProcess:
        """A new container process of ``spec``. Raises :class:`FunctionFailed` if the fork server is gone."""
        ours, theirs = socket.socketpair()
        options = container_arguments(
            spec, code_dir=self.code_dir, log_stream_name=log_stream_name, log_level=log_level
        )
        try:
            with self._lock:
                self._control.settimeout(INIT_SECONDS)
                if not self._ready:
                    if self._control.recv(64) != READY:
                        raise FunctionFailed(f"the fork server of {self.code_dir} did not start")
                    self._ready = True
                socket.send_fds(self._control, [json.dumps(options).encode()], [theirs.fileno()])
                reply = self._control.recv(64)
        except (OSError, FunctionFailed) as error:
            ours.close()
            raise FunctionFailed(f"{spec.logical_id}: no container from the fork server: {error}") from None
        finally:
            theirs.close()
        if not reply:
            ours.close()
            raise FunctionFailed(f"{spec.logical_id}: the fork server of {self.code_dir} exited")
        return ContainerProcess(spec, ours, pid=int(json.loads(reply)["pid"]))

    def stop(self) -> None:
        """Idempotent. The containers it forked live on until their own sockets close."""
        with contextlib.suppress(OSError):
            self._control.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the fork server ------------------------------------------------------------------------------------------


def _preload(code_dir: str) -> None:
    sys.path.insert(0, code_dir)
    for name in SHARED:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _serve_container(control: socket.socket, options: dict[str, Any], fd: int) -> None:
    """In the forked child: become the container (never returns)."""
    status = 0
    try:
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        with socket.socket(fileno=fd) as sock:
            serve_invocations(sock, argparse.Namespace(**options))
    except BaseException:
        log.exception("container %s failed", options.get("function_name"))
        status = 1
    finally:
        logging.shutdown()
        os._exit(status)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fork server of container processes (started by the dev server).")
    parser.add_argument("--fd", type=int, required=True, help="the control socket")
    parser.add_argument("--code-dir", required=True)
    parser.add_argument("--log-level", default="INFO")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=arguments.log_level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the containers
    control = socket.socket(fileno=arguments.fd)
    _preload(arguments.code_dir)
    control.send(READY)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 65536, 1)
        except OSError:
            return
        if not message or not fds:
            return  # the dev server closed the control socket, or died
        pid = os.fork()
        if pid == 0:
            _serve_container(control, json.loads(message), fds[0])
        os.close(fds[0])
        control.send(json.dumps({"pid": pid}).encode())


if __name__ == "__main__":
    main()
