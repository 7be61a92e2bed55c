"""The local stack's servers in processes of their own (``infra.child_process.ChildServer``): the demo upstream as
an example, stopped idempotently; a child that cannot start is reported."""

from __future__ import annotations

import os
import socket
import threading

import httpx
import pytest

from infra.asgi_thread import listening_socket
from infra.child_process import ChildFailed, ChildServer
from infra.demo_upstream import start_demo_upstream


def test_the_demo_upstream_runs_in_another_process_and_stop_is_idempotent() -> None:
    # Given the demo upstream started in a process of its own
    upstream = start_demo_upstream()
    try:
        # Then another process serves its port
        assert upstream.process.pid != os.getpid()
        assert httpx.get(f"http://127.0.0.1:{upstream.port}/nothing-here", timeout=10).status_code == 404
    finally:
        # When it is stopped twice, from two threads at once
        stoppers = [threading.Thread(target=upstream.stop) for _ in range(2)]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
    # Then it exited (not killed) and its port is free
    assert upstream.process.returncode == 0
    with socket.create_server(("127.0.0.1", upstream.port)):
        pass


def test_a_child_that_exits_while_starting_is_reported() -> None:
    with pytest.raises(ChildFailed, match="exited while starting"):
        ChildServer("missing server", "infra.no_such_module", listening_socket())
