"""``infra.ports``: who holds a port, read from /proc, for the "port already in use" message; and the project's
listening sockets reuse the address, so only a held port, not a connection in TIME_WAIT, keeps a server from
starting."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.asgi_thread import listening_socket
from infra.ports import PortHolder, describe_holders, port_holders, port_taken_message, tcp_sockets

HOST = "127.0.0.1"
LINUX_PROC = Path("/proc/net/tcp").exists()
PORT = 9001
TABLE_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port this process listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen()
        yield sock.getsockname()[1]


# --- the real /proc -------------------------------------------------------------------------------------------


@pytest.mark.skipif(not LINUX_PROC, reason="the holder is looked up in /proc (Linux)")
def test_the_message_for_a_port_this_process_listens_on_names_this_process(held_port: int) -> None:
    # Given a port this test process listens on
    # When the message for that port is built
    message = port_taken_message(held_port, "demo upstream", "Stop it, or choose another port: UPSTREAM_PORT=<port>")

    # Then it says which server cannot start, names this process by pid and command line, and says what to do
    lines = message.splitlines()
    assert lines[0] == f"error: port {held_port} on 127.0.0.1 is already in use, so the demo upstream cannot start."
    command = Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    assert lines[1] == f"  pid {os.getpid()} listens on it: {command}"
    assert lines[-1] == "Stop it, or choose another port: UPSTREAM_PORT=<port>"


@pytest.mark.skipif(not LINUX_PROC, reason="the holder is looked up in /proc (Linux)")
def test_a_listener_on_the_port_is_found_with_its_state(held_port: int) -> None:
    sockets = tcp_sockets(held_port)
    assert sockets is not None
    assert any(item.state == "LISTEN" and item.address == HOST and item.inode for item in sockets)
    holders = port_holders(held_port)
    assert holders is not None
    assert [holder.pid for holder in holders] == [os.getpid()]
    assert holders[0].state == "LISTEN"


# --- a /proc written by the test --------------------------------------------------------------------------------


def _line(number: int, local: str, state: str, inode: int) -> str:
    rest = "00000000:00000000 00:00000000 00000000     0        0"
    return f"   {number}: {local}:{PORT:04X} 00000000:0000 {state} {rest} {inode} 1 0000000000000000 100 0 0 10 0\n"


def _process(proc: Path, pid: int, inodes: list[int], cmdline: bytes, comm: str = "python") -> None:
    fd = proc / str(pid) / "fd"
    fd.mkdir(parents=True)
    for number, inode in enumerate(inodes, start=3):
        os.symlink(f"socket:[{inode}]", fd / str(number))
    os.symlink("/dev/null", fd / "0")
    (proc / str(pid) / "cmdline").write_bytes(cmdline)
    (proc / str(pid) / "comm").write_text(comm + "\n")


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    """A /proc with sockets on port 9001: LISTEN on 0.0.0.0 (inode 222, pid 100, a `make dev`), LISTEN on [::]
    (inode 333, pid 200, empty command line), LISTEN on 127.0.0.2 (inode 111, pid 400: does not conflict with
    127.0.0.1), an accepted connection on 127.0.0.1 (inode 444, pid 100) and a connection in TIME_WAIT (no inode).
    Addresses are written as a little-endian kernel prints them."""
    if sys.byteorder != "little":
        pytest.skip("the table below is written as a little-endian kernel prints it")
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "net" / "tcp").write_text(
        TABLE_HEADER
        + _line(0, "0200007F", "0A", 111)
        + _line(1, "0100007F", "06", 0)
        + _line(2, "00000000", "0A", 222)
        + _line(3, "0100007F", "01", 444)
        + "   4: garbage\n"
    )
    (proc / "net" / "tcp6").write_text(TABLE_HEADER + _line(0, "0" * 32, "0A", 333))
    _process(proc, 100, [222, 444], b"/usr/bin/python3\0-m\0infra.dev\0")
    _process(proc, 200, [333], b"", comm="node")
    _process(proc, 400, [111], b"nc\0-l\0")
    return proc


def test_the_table_is_read_with_addresses_and_states(fake_proc: Path) -> None:
    sockets = tcp_sockets(PORT, proc=fake_proc)
    assert sockets is not None
    assert [(item.address, item.state, item.inode) for item in sockets] == [
        ("127.0.0.2", "LISTEN", 111),
        ("127.0.0.1", "TIME_WAIT", 0),
        ("0.0.0.0", "LISTEN", 222),
        ("127.0.0.1", "ESTABLISHED", 444),
        ("::", "LISTEN", 333),
    ]
    assert tcp_sockets(PORT + 1, proc=fake_proc) == []


def test_holders_are_the_processes_whose_sockets_conflict_with_the_host(fake_proc: Path) -> None:
    # When the holders of 127.0.0.1:9001 are looked up
    holders = port_holders(PORT, HOST, proc=fake_proc)

    # Then they are the wildcard listeners' processes (a listener on 127.0.0.2 and the TIME_WAIT do not count)
    assert holders == [
        PortHolder(100, "/usr/bin/python3 -m infra.dev", "LISTEN"),
        PortHolder(200, "[node]", "LISTEN"),
    ]


def test_the_description_flags_another_make_dev(fake_proc: Path) -> None:
    assert describe_holders(PORT, HOST, proc=fake_proc).splitlines() == [
        "  pid 100 listens on it: /usr/bin/python3 -m infra.dev  (another `make dev`)",
        "  pid 200 listens on it: [node]",
    ]


def test_a_socket_held_but_not_listening_is_named_with_its_state(fake_proc: Path) -> None:
    # Given only the accepted connection on 127.0.0.1:9001 is left
    (fake_proc / "net" / "tcp").write_text(TABLE_HEADER + _line(0, "0100007F", "01", 444))
    (fake_proc / "net" / "tcp6").write_text(TABLE_HEADER)

    assert describe_holders(PORT, HOST, proc=fake_proc) == (
        "  pid 100 holds a socket on it (ESTABLISHED): /usr/bin/python3 -m infra.dev  (another `make dev`)"
    )


def test_without_a_visible_holder_the_message_says_so(fake_proc: Path) -> None:
    # Given only the TIME_WAIT connection is left (what a stopped server leaves behind)
    (fake_proc / "net" / "tcp").write_text(TABLE_HEADER + _line(0, "0100007F", "06", 0))
    (fake_proc / "net" / "tcp6").write_text(TABLE_HEADER)

    assert port_holders(PORT, HOST, proc=fake_proc) == []
    assert describe_holders(PORT, HOST, proc=fake_proc).startswith("No process this user may inspect holds it")


def test_without_proc_the_message_says_how_to_look(tmp_path: Path) -> None:
    assert tcp_sockets(PORT, proc=tmp_path) is None
    assert port_holders(PORT, proc=tmp_path) is None
    assert "`lsof -nP -iTCP:9001 -sTCP:LISTEN`" in describe_holders(PORT, proc=tmp_path)


# --- the listening sockets ----------------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="SO_REUSEADDR is set on POSIX only")
def test_the_listening_socket_reuses_the_address_but_not_the_port() -> None:
    # listening_socket serves the demo upstream, the conformance fixture and the bench upstream
    with listening_socket() as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
        if hasattr(socket, "SO_REUSEPORT"):
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        assert sock.getsockname()[0] == HOST


def test_a_port_someone_listens_on_is_still_refused(held_port: int) -> None:
    # SO_REUSEADDR lets a server start where a closed connection lingers, never where another server listens
    with pytest.raises(OSError, match="in use"):
        listening_socket(held_port)
