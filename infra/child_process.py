"""The local stack's servers in processes of their own, as the deployment runs them: the store (moto) elsewhere, the
demo upstream elsewhere, each simulated function container in a process of its own.

The parent binds each server's listening socket itself (so a taken port is reported by the parent, naming who holds
it, before anything starts) and hands it to the child with ``--fd``; the child serves on it and says it is ready on
``--ready-fd``. A child stops when

- its standard input reaches end of file: the parent closed it, or died (even of SIGKILL), so no child outlives
  the stack and keeps a port;
- it gets SIGTERM (a process group stopped as a whole, e.g. ``make dev`` in a terminal that closes).

Children ignore SIGINT: Ctrl-C reaches the whole process group, and the parent stops its children in order
(the store last, so that it saves what the others wrote).

:class:`StopRequests` is the signal-safe wait used on both sides (issue 20 item 19): a signal handler only notes
the signal, and the wait wakes up through the C-level wakeup fd; no handler takes a lock, so a second signal while
the first is being handled (``make`` forwards SIGTERM to its child, which the process group's SIGTERM reached too)
cannot block the process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

REPO_ROOT = Path(__file__).resolve().parent.parent
READY = b"ready\n"
DEFAULT_READY_SECONDS = 60.0
STOP_SECONDS = 10.0
MAX_NOTED = 64  # signals noted by StopRequests; a flood of them must not grow a list without end


class ChildFailed(RuntimeError):
    """A child process exited or stayed silent instead of saying it is ready."""


# --- waiting for a stop, signal-safely ------------------------------------------------------------------------


class StopRequests:
    """SIGINT / SIGTERM (and, optionally, end of file on a watched descriptor) as a stop request one can wait for.

    Install in the main thread (Python runs signal handlers there, and only it may set the wakeup fd). The handlers
    append the signal number to :attr:`received` and nothing else; the C-level wakeup fd wakes :meth:`wait` up.
    Signals keep being noted after the first, so a repeated Ctrl-C or SIGTERM during shutdown changes nothing.
    """

    def __init__(
        self, signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM), *, watch: int | None = None
    ) -> None:
        self.received: list[int] = []
        self._watch = watch
        self._watched_closed = False
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous_wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._previous: dict[signal.Signals, Any] = {}
        for signum in signals:
            self._previous[signum] = signal.signal(signum, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if len(self.received) < MAX_NOTED:  # nothing else here: see the class docstring
            self.received.append(signum)

    @property
    def requested(self) -> bool:
        return bool(self.received) or self._watched_closed

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested (True) or ``timeout`` seconds pass (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.requested:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            readable = [self._read] + ([self._watch] if self._watch is not None else [])
            ready, _, _ = select.select(readable, [], [], remaining)
            if self._read in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._read, 512)
            if self._watch is not None and self._watch in ready:
                try:
                    data = os.read(self._watch, 512)
                except OSError:
                    data = b""
                if not data:
                    self._watched_closed = True
        return True

    def close(self) -> None:
        """Restore the previous handlers and wakeup fd."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_wakeup)
        os.close(self._read)
        os.close(self._write)

    def __enter__(self) -> StopRequests:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --- the parent's side ----------------------------------------------------------------------------------------


def python_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) with the repository importable (``infra``)."""
    environment = dict(os.environ if env is None else env)
    paths = [str(REPO_ROOT), *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return environment


class ChildServer:
    """A server module run as ``python -m infra.child_process MODULE --fd N --ready-fd M ARGS`` (see :func:`launch`)
    on a socket this process bound.

    :meth:`stop` is idempotent and never called from a signal handler; it closes the child's standard input (a
    graceful stop), then sends SIGTERM, then SIGKILL, each after a grace period.
    """

    def __init__(
        self,
        name: str,
        module: str,
        sock: socket.socket,
        args: Sequence[str] = (),
        *,
        env: dict[str, str] | None = None,
        ready_seconds: float = DEFAULT_READY_SECONDS,
        wait: bool = True,
    ) -> None:
        """Start the child; unless ``wait`` is false, wait until it says it is ready (else call
        :meth:`wait_ready`, e.g. after starting others, so that they start side by side)."""
        self.name = name
        self.port: int = sock.getsockname()[1]
        self._socket: socket.socket | None = sock
        self._ready_seconds = ready_seconds
        self._ready_read, ready_write = os.pipe()
        command = [sys.executable, "-m", __name__, module, "--fd", str(sock.fileno()), "--ready-fd", str(ready_write)]
        command += args
        try:
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=python_environment(env),
                stdin=subprocess.PIPE,
                pass_fds=(sock.fileno(), ready_write),
            )
        except BaseException:
            os.close(self._ready_read)
            sock.close()
            raise
        finally:
            os.close(ready_write)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the child says it is ready; raises :class:`ChildFailed` (the child stopped) if it does not.
        Idempotent."""
        if self._socket is None:
            return
        try:
            self._wait_ready(self._ready_read, self._ready_seconds)
        except BaseException:
            self.stop()
            raise
        self._release_socket()

    def _release_socket(self) -> None:
        """The child has its own copy of the listening socket; a dead child must not leave one that accepts."""
        if self._socket is not None:
            os.close(self._ready_read)
            self._socket.close()
            self._socket = None

    def _wait_ready(self, ready_read: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        received = b""
        while not received.endswith(READY):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChildFailed(f"the {self.name} did not start within {seconds:g} s")
            ready, _, _ = select.select([ready_read], [], [], min(remaining, 0.5))
            if ready:
                chunk = os.read(ready_read, 64)
                if not chunk:
                    raise ChildFailed(f"the {self.name} exited while starting (status {self.process.wait()})")
                received += chunk

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        self._release_socket()  # if stopped before it was ready
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        for escalate in (None, self.process.terminate, self.process.kill):
            if escalate is not None and self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    escalate()
            try:
                self.process.wait(timeout=timeout)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- the child's side -----------------------------------------------------------------------------------------


def child_parser(description: str) -> argparse.ArgumentParser:
    """A child's argument parser with ``--fd`` and ``--ready-fd`` (see :class:`ChildServer`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fd", type=int, required=True, help="the listening socket to serve on")
    parser.add_argument("--ready-fd", type=int, required=True, help="where to write 'ready' once serving")
    return parser


def inherited_socket(fd: int) -> socket.socket:
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


def serve_until_stopped(ready_fd: int, stop: Callable[[], None]) -> None:
    """In a child whose server already runs: say so on ``ready_fd``, wait for end of file on standard input or
    SIGTERM (ignoring SIGINT, see the module docstring), then call ``stop``."""
    with StopRequests((signal.SIGTERM,), watch=sys.stdin.fileno()) as requests:
        os.write(ready_fd, READY)
        os.close(ready_fd)
        requests.wait()
        stop()


def launch(argv: Sequence[str]) -> None:
    """``python -m infra.child_process MODULE ARGS``: run MODULE as ``__main__`` with SIGINT ignored from before its
    imports (Ctrl-C during a child's start must not print a traceback; the parent stops its children)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import runpy

    module, *rest = argv
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    launch(sys.argv[1:])
