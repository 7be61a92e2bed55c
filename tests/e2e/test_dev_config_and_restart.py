"""``make dev`` with a configuration of one's own, and ``make dev`` again right after a stop (issue 8, parts 3, 4).

``make dev CONFIG=FILE`` serves FILE's routes (and not the example's), a bad FILE stops it with the message of
``python -m gateway.config check FILE``, a port someone listens on stops it with a message naming that process, and
a connection left in TIME_WAIT by the previous run does not keep it from starting again on the same ports.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from infra.asgi_thread import AsgiThread
from infra.demo_upstream import DemoUpstream, start_demo_upstream
from infra.devserver import REPO_ROOT
from infra.ports import tcp_sockets
from tests.fixtures.conformance_server import start_conformance_server
from tests.support.dev_process import HOST, MAKE, STARTUP_SECONDS, Running, dev_environment, kill_group, start

pytestmark = pytest.mark.e2e

LINUX_PROC = Path("/proc/net/tcp").exists()
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


@pytest.fixture
def run() -> Iterator[Callable[[list[str], dict[str, str]], Running]]:
    started: list[Running] = []

    def run_one(command: list[str], env: dict[str, str]) -> Running:
        running = start(command, env)
        started.append(running)
        return running

    yield run_one
    for running in started:
        kill_group(running)


def prm_url(dev_port: int, workspace: str, server: str) -> str:
    return f"http://{HOST}:{dev_port}/.well-known/oauth-protected-resource/{workspace}/{server}/mcp"


# --- make dev CONFIG=... ------------------------------------------------------------------------------------------


@needs_make
@pytest.mark.slow
def test_make_dev_serves_the_routes_of_the_config_it_is_given(
    tmp_path: Path, free_port: Callable[[], int], run: Callable[[list[str], dict[str, str]], Running]
) -> None:
    # Given a configuration of one's own: workspace acme, route notes, a dev login for carol
    dev_port, upstream_port = free_port(), free_port()
    config = tmp_path / "my-gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "workspaces": {
                    "acme": {
                        "identity_provider": {"type": "dev", "users": [{"id": "carol", "password": "carol-password"}]},
                        "servers": {"notes": {"upstream": f"http://{HOST}:{upstream_port}/mcp", "scopes": ["mcp"]}},
                    }
                }
            }
        )
    )

    # When `make dev CONFIG=my-gateway.yaml` starts
    env = dev_environment(tmp_path, dev_port, upstream_port)
    dev = run([*MAKE, "dev", f"CONFIG={config}", f"PY={sys.executable}"], env)
    route = f"http://{HOST}:{dev_port}/acme/notes/mcp"
    dev.wait_for(f"claude mcp add --transport http notes {route}")

    # Then it printed that configuration's route, PRM and dev login, and nothing of the example's
    output = dev.output
    assert f"Routes ({config}):" in output
    assert f"PRM: {prm_url(dev_port, 'acme', 'notes')}" in output
    assert "carol / carol-password" in output
    assert "demo/echo" not in output
    assert "alice" not in output
    # And it serves that route's Protected Resource Metadata, and the example's route is not there
    prm = httpx.get(prm_url(dev_port, "acme", "notes"))
    assert prm.status_code == 200, prm.text
    assert prm.json()["resource"] == route
    assert prm.json()["authorization_servers"] == [f"http://{HOST}:{dev_port}/acme/notes"]
    assert httpx.get(prm_url(dev_port, "demo", "echo")).status_code == 404
    # And `make invoke` would use the same configuration: a copy of it beside the state file, with its validated
    # form there too (nothing is written beside the user's file)
    state = json.loads((tmp_path / "state.json").read_text())
    served = Path(state["env"]["GATEWAY_CONFIG"])
    assert state["config_source"] == str(config)
    assert served.parent == tmp_path / "config" and served.read_text() == config.read_text()
    assert served.with_name(served.name + ".validated.json").is_file()
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("my-gateway")) == ["my-gateway.yaml"]

    dev.interrupt()


@needs_make
@pytest.mark.slow
def test_a_copy_of_the_example_with_another_upstream_port_is_told_which_route_to_change_and_how(
    tmp_path: Path, free_port: Callable[[], int], run: Callable[[list[str], dict[str, str]], Running]
) -> None:
    # Given a copy of the example configuration (its routes point at the demo upstream's default 127.0.0.1:9001)
    config = tmp_path / "my-gateway.yaml"
    config.write_text((REPO_ROOT / "examples" / "gateway.yaml").read_text())
    dev_port, upstream_port = free_port(), free_port()

    # When `make dev CONFIG=my-gateway.yaml` runs with another UPSTREAM_PORT
    dev = run(
        [*MAKE, "dev", f"CONFIG={config}", f"PY={sys.executable}"], dev_environment(tmp_path, dev_port, upstream_port)
    )
    dev.wait_for("Note: ")
    dev.wait_for("start make dev without UPSTREAM_PORT")

    # Then the banner names each route still pointing at 9001, the key to change and the value to set
    upstream = f"http://{HOST}:{upstream_port}/mcp"
    output = " ".join(dev.output.split())
    assert "route demo/echo (workspaces.demo.servers.echo.upstream)" in output
    assert "route demo/toolbox (workspaces.demo.servers.toolbox.upstreams.demo.url)" in output
    assert f"points at http://{HOST}:9001/mcp" in output
    assert f"set that key to {upstream} in {config}" in output
    dev.ctrl_c()


BAD_CONFIG = """\
workspaces:
  acme:
    identity_provider: {type: dev, users: [{id: carol}]}
    servers:
      notes:
        upstream: ftp://notes.example.com/mcp
        scopes: mcp
"""


@needs_make
def test_a_bad_config_stops_make_dev_with_the_check_message(tmp_path: Path, free_port: Callable[[], int]) -> None:
    # Given a configuration with three bad keys, and what `python -m gateway.config check` says about it
    config = tmp_path / "bad.yaml"
    config.write_text(BAD_CONFIG)
    env = dev_environment(tmp_path, free_port(), free_port())
    check = subprocess.run(
        [sys.executable, "-m", "gateway.config", "check", str(config)], env=env, capture_output=True, text=True
    )
    assert check.returncode == 1
    assert "workspaces.acme.servers.notes.upstream:" in check.stderr
    assert "workspaces.acme.identity_provider.users.0.password: Field required" in check.stderr  # as the file writes it

    # When `make dev CONFIG=bad.yaml` runs
    dev = subprocess.run(
        [*MAKE, "dev", f"CONFIG={config}", f"PY={sys.executable}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
    )

    # Then it fails before starting anything, with the same per-key message and no traceback
    assert dev.returncode != 0
    assert check.stderr in dev.stderr
    assert "Traceback" not in dev.stdout + dev.stderr
    assert "dev server on" not in dev.stdout + dev.stderr
    assert not (tmp_path / "state.json").exists()


def test_a_missing_config_stops_infra_dev_with_exit_1(tmp_path: Path, free_port: Callable[[], int]) -> None:
    missing = tmp_path / "nope.yaml"
    dev = subprocess.run(
        [sys.executable, "-m", "infra.dev", "--config", str(missing)],
        cwd=REPO_ROOT,
        env=dev_environment(tmp_path, free_port(), free_port()),
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
    )
    assert dev.returncode == 1
    assert f"cannot read gateway configuration {missing}: No such file or directory" in dev.stderr
    assert "Traceback" not in dev.stderr


# --- a port someone holds -----------------------------------------------------------------------------------------


def test_a_port_another_process_listens_on_stops_infra_dev_naming_that_process(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    # Given this test process listens on the port the demo upstream should use
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, 0))
        holder.listen()
        upstream_port = holder.getsockname()[1]

        # When `python -m infra.dev` (what `make dev` runs) starts
        dev = subprocess.run(
            [sys.executable, "-m", "infra.dev"],
            cwd=REPO_ROOT,
            env=dev_environment(tmp_path, free_port(), upstream_port),
            capture_output=True,
            text=True,
            timeout=STARTUP_SECONDS,
        )

    # Then it exits 1 with a message naming the port, this process and what to do, and no traceback
    assert dev.returncode == 1
    assert "Traceback" not in dev.stderr
    message = dev.stderr.strip().splitlines()
    assert message[0] == f"error: port {upstream_port} on {HOST} is already in use, so the demo upstream cannot start."
    if LINUX_PROC:
        assert message[1].startswith(f"  pid {os.getpid()} listens on it: ")
    assert message[-1] == "Stop it, or choose another port: UPSTREAM_PORT=<port> make dev"


# --- starting again at once -------------------------------------------------------------------------------------


def leave_time_wait(port: int) -> None:
    """One HTTP request with ``Connection: close``, read until the server closes: the server closed first, so its
    end of the connection (local port ``port``) stays in TIME_WAIT after the process has stopped."""
    with socket.create_connection((HOST, port), timeout=10) as connection:
        connection.sendall(f"GET /nothing-here HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode())
        response = b""
        while chunk := connection.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 "), response


def assert_time_wait_blocks_a_plain_bind(port: int) -> None:
    """Proof that the restart below is a real test: the port has a connection in TIME_WAIT, and a socket without
    SO_REUSEADDR (what the demo upstream had) cannot bind it although nothing listens there."""
    if not LINUX_PROC:
        return
    sockets = tcp_sockets(port)
    assert sockets is not None
    assert any(item.state == "TIME_WAIT" for item in sockets), sockets
    assert not any(item.state == "LISTEN" for item in sockets), sockets
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain, pytest.raises(OSError, match="in use"):
        plain.bind((HOST, port))


@pytest.mark.parametrize("start", [start_demo_upstream, start_conformance_server], ids=["demo", "conformance"])
def test_a_server_starts_again_on_its_port_right_after_a_stop(
    start: Callable[[int], AsgiThread | DemoUpstream], free_port: Callable[[], int]
) -> None:
    # Given the server ran on a fixed port, served a connection it closed itself, and was stopped
    port = free_port()
    server = start(port)
    leave_time_wait(port)
    server.stop()
    assert_time_wait_blocks_a_plain_bind(port)

    # When it starts again on the same port at once
    again = start(port)

    # Then it runs and answers there
    try:
        assert again.port == port
        assert httpx.get(f"http://{HOST}:{port}/nothing-here").status_code == 404
    finally:
        again.stop()


@pytest.mark.slow
def test_make_dev_starts_again_right_after_a_stop(
    tmp_path: Path, free_port: Callable[[], int], run: Callable[[list[str], dict[str, str]], Running]
) -> None:
    # Given `python -m infra.dev` (what `make dev` runs) on fixed ports, whose demo upstream and dev server each
    # closed a connection themselves
    dev_port, upstream_port = free_port(), free_port()
    env = dev_environment(tmp_path, dev_port, upstream_port)
    ready = f"claude mcp add --transport http echo http://{HOST}:{dev_port}/demo/echo/mcp"
    first = run([sys.executable, "-m", "infra.dev"], env)
    first.wait_for(ready)
    leave_time_wait(upstream_port)
    leave_time_wait(dev_port)

    # When it is stopped with Ctrl-C
    assert first.interrupt() == 0, first.output
    assert_time_wait_blocks_a_plain_bind(upstream_port)

    # Then it starts again at once on the same ports, and serves
    second = run([sys.executable, "-m", "infra.dev"], env)
    second.wait_for(ready)
    assert "already in use" not in second.output
    assert httpx.get(prm_url(dev_port, "demo", "echo")).status_code == 200
    assert second.interrupt() == 0, second.output
