"""Who holds a TCP port, so that "port already in use" names the real cause instead of guessing.

Linux only, best effort, no dependency: the sockets on the port come from ``/proc/net/tcp`` and ``/proc/net/tcp6``
(local address, state, inode), and the processes holding them from the ``socket:[inode]`` links in
``/proc/<pid>/fd``. Another user's processes cannot be inspected, and other systems have no ``/proc``; then the
message says so and how to look.

Every listening socket of the project sets ``SO_REUSEADDR`` (see :func:`infra.asgi_thread.listening_socket`), so a
connection left in ``TIME_WAIT`` by a stopped server never blocks the next start; only a socket some process still
holds does, and that is what :func:`port_holders` finds.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")

# The kernel's TCP states (include/net/tcp_states.h), as /proc/net/tcp prints them (hex).
TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
}
LISTEN = "LISTEN"
TIME_WAIT = "TIME_WAIT"


@dataclass(frozen=True)
class TcpSocket:
    """One line of ``/proc/net/tcp[6]``: a socket whose local port is the one asked about."""

    address: str  # local address, e.g. "127.0.0.1", "0.0.0.0", "::"
    port: int
    state: str  # e.g. "LISTEN", "TIME_WAIT"
    inode: int  # 0 for sockets no process holds any more (TIME_WAIT)


@dataclass(frozen=True)
class PortHolder:
    """A process holding a socket on the port."""

    pid: int
    command: str  # its command line, or "[comm]" when that is empty or unreadable
    state: str  # of the socket it holds, e.g. "LISTEN"


def _address(hex_address: str) -> str:
    """The kernel prints each 32-bit word of the address in host byte order."""
    words = [int(hex_address[i : i + 8], 16) for i in range(0, len(hex_address), 8)]
    packed = b"".join(struct.pack("=I", word) for word in words)
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


def tcp_sockets(port: int, *, proc: Path = PROC) -> list[TcpSocket] | None:
    """The TCP sockets whose local port is ``port`` (IPv4 and IPv6), or None where ``/proc/net/tcp`` is missing."""
    found: list[TcpSocket] = []
    readable = False
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            local, _, local_port = fields[1].rpartition(":")
            try:
                if int(local_port, 16) != port:
                    continue
                state_number, inode = int(fields[3], 16), int(fields[9])
                address = _address(local)
            except ValueError:
                continue
            found.append(TcpSocket(address, port, TCP_STATES.get(state_number, f"state {state_number}"), inode))
    return found if readable else None


def _conflicts(address: str, host: str) -> bool:
    """Does a socket bound to ``address`` keep a bind to ``host`` on the same port from succeeding?"""
    return address in {host, "0.0.0.0", "::", f"::ffff:{host}"} or host in {"0.0.0.0", "::"}


def _command(pid_dir: Path) -> str:
    try:
        command = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        command = ""
    if command:
        return command
    try:
        return f"[{(pid_dir / 'comm').read_text(errors='replace').strip()}]"
    except OSError:
        return "[unknown]"


def port_holders(port: int, host: str = "127.0.0.1", *, proc: Path = PROC) -> list[PortHolder] | None:
    """The processes holding a socket that keeps ``host:port`` from being bound, listeners first; None where
    this cannot be looked up (no ``/proc``). Processes this user may not inspect are missing from the list."""
    sockets = tcp_sockets(port, proc=proc)
    if sockets is None:
        return None
    states = {
        item.inode: item.state
        for item in sockets
        if item.inode and item.state != TIME_WAIT and _conflicts(item.address, host)
    }
    holders: list[PortHolder] = []
    if not states:
        return holders
    links = {f"socket:[{inode}]": inode for inode in states}
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            descriptors = os.listdir(pid_dir / "fd")
        except OSError:  # another user's process, or it just exited
            continue
        held: set[int] = set()
        for descriptor in descriptors:
            try:
                inode = links.get(os.readlink(pid_dir / "fd" / descriptor))
            except OSError:
                continue
            if inode is not None:
                held.add(inode)
        if held:
            state = LISTEN if any(states[inode] == LISTEN for inode in held) else states[min(held)]
            holders.append(PortHolder(int(pid_dir.name), _command(pid_dir), state))
    holders.sort(key=lambda holder: (holder.state != LISTEN, holder.pid))
    return holders


def describe_holders(port: int, host: str = "127.0.0.1", *, proc: Path = PROC) -> str:
    """One sentence or more on who holds ``host:port``, for an error message."""
    try:
        holders = port_holders(port, host, proc=proc)
    except OSError:  # /proc itself unreadable: as if there were none
        holders = None
    if holders is None:
        return (
            "Which process holds it cannot be looked up here; "
            f"`lsof -nP -iTCP:{port} -sTCP:LISTEN` shows the one listening on it."
        )
    if not holders:
        return (
            "No process this user may inspect holds it; another user's or another container's process may "
            f"(`sudo ss -ltnp 'sport = :{port}'` names it), or it has just been freed."
        )
    lines = []
    for holder in holders:
        doing = "listens on it" if holder.state == LISTEN else f"holds a socket on it ({holder.state})"
        note = "  (another `make dev`)" if "infra.dev" in holder.command.split() else ""
        lines.append(f"  pid {holder.pid} {doing}: {holder.command}{note}")
    return "\n".join(lines)


def port_taken_message(port: int, what: str, remedy: str, host: str = "127.0.0.1", *, proc: Path = PROC) -> str:
    """``error: port ... is already in use, so the <what> cannot start.``, who holds it, then ``remedy``."""
    return f"error: port {port} on {host} is already in use, so the {what} cannot start.\n" + "\n".join(
        [describe_holders(port, host, proc=proc), remedy]
    )
